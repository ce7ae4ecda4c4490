// The two helpers counterpart takes from Node's util module.
export const isArray = Array.isArray;
export const isDate = (d) => Object.prototype.toString.call(d) === "[object Date]";
export default { isArray, isDate };
