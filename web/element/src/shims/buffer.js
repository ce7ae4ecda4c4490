// Node's Buffer, which bloom-filters (room list, read receipts) expects as a global;
// webpack's ProvidePlugin gave it to Element Web.
export { Buffer } from "buffer";
