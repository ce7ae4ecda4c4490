// Tests for the security fixes Outpost backports onto the Element SDKs (patches/). Each
// compiles the patched TypeScript source - what the bundle is built from - with esbuild and
// checks the behaviour the advisory describes. Run: npm test (in web/element).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const nm = join(here, '..', 'node_modules');

async function load(entry, contents) {
  const dir = mkdtempSync(join(here, '.tmp-')); // inside the package, so external imports resolve
  const out = join(dir, 'bundle.mjs');
  await esbuild.build({
    stdin: { contents, resolveDir: here, loader: 'ts' },
    bundle: true, format: 'esm', platform: 'node', outfile: out, logLevel: 'error',
    // Only what the checked code needs; the crypto wasm stays out.
    external: ['@matrix-org/matrix-sdk-crypto-wasm'],
  });
  try {
    return await import(pathToFileURL(out).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('CVE-2024-50336: MXC URIs with path traversal get no URL', async () => {
  const { getHttpUriForMxc } = await load('content-repo', `export { getHttpUriForMxc } from "${nm}/matrix-js-sdk/src/content-repo.ts";`);
  const base = 'https://box.lan';
  assert.equal(getHttpUriForMxc(base, 'mxc://box.lan/AbC-12_x'), 'https://box.lan/_matrix/media/v3/download/box.lan/AbC-12_x');
  assert.match(getHttpUriForMxc(base, 'mxc://box.lan:8448/abc', 32, 32, 'crop', false, false, true), /^https:\/\/box\.lan\/_matrix\/client\/v1\/media\/thumbnail\/box\.lan:8448\/abc\?/);
  for (const bad of [
    'mxc://box.lan/../../_matrix/client/v3/rooms/!x:box.lan/leave',
    'mxc://box.lan/abc/../../../_matrix/client/v3/account/whoami',
    'mxc://../_matrix/client/v3/account/whoami/abc',
    'mxc://box.lan/abc?access_token=x',
    'mxc://box.lan/abc#/../../x',
    'mxc://bo x.lan/abc',
    'mxc://box.lan/',
    'mxc://box.lan',
  ]) {
    assert.equal(getHttpUriForMxc(base, bad), '', bad);
    assert.equal(getHttpUriForMxc(base, bad, 10, 10, 'scale', false, true, true), '', bad + ' (authenticated thumbnail)');
  }
});

// A client whose store holds the given rooms, without network or crypto.
const roomsHarness = `
import { MatrixClient } from "${nm}/matrix-js-sdk/src/client.ts";
import { Room } from "${nm}/matrix-js-sdk/src/models/room.ts";
import { MatrixEvent } from "${nm}/matrix-js-sdk/src/models/event.ts";
import { StubStore } from "${nm}/matrix-js-sdk/src/store/stub.ts";
export function setup() {
  const client = new MatrixClient({ baseUrl: "https://box.lan", userId: "@alice:box.lan", fetchFn: async () => { throw new Error("offline"); } });
  const rooms = [];
  client.store = new StubStore();
  client.store.getRooms = () => rooms;
  client.store.getRoom = (id) => rooms.find((r) => r.roomId === id) ?? null;
  const add = (id) => { const r = new Room(id, client, "@alice:box.lan"); rooms.push(r); return r; };
  const state = (room, type, content, sender = "@alice:box.lan") => room.addLiveEvents([new MatrixEvent({
    type, state_key: "", content, sender, room_id: room.roomId, event_id: "$" + Math.random(), origin_server_ts: 1,
  })], { addToState: true });
  return { client, add, state };
}
`;

test('CVE-2025-59160: a room cannot hide another by claiming to replace it', async () => {
  const { setup } = await load('rooms', roomsHarness);
  const { client, add, state } = setup();
  const victim = add('!victim:box.lan');
  const attacker = add('!attacker:evil.example');
  state(victim, 'm.room.create', { room_version: '10' });
  // The attacker's room says it continues the victim's; the victim has no tombstone.
  state(attacker, 'm.room.create', { room_version: '10', predecessor: { room_id: victim.roomId } }, '@mallory:evil.example');
  assert.deepEqual(client.getVisibleRooms().map((r) => r.roomId).sort(), [attacker.roomId, victim.roomId].sort());
  // Even a tombstone pointing elsewhere does not count as agreement.
  state(victim, 'm.room.tombstone', { replacement_room: '!other:box.lan', body: 'moved' });
  assert.equal(client.getVisibleRooms().length, 2);
  // A real upgrade - both sides agree - hides the old room.
  const upgraded = add('!new:box.lan');
  state(upgraded, 'm.room.create', { room_version: '10', predecessor: { room_id: victim.roomId } });
  state(victim, 'm.room.tombstone', { replacement_room: upgraded.roomId, body: 'upgraded' });
  assert.deepEqual(client.getVisibleRooms().map((r) => r.roomId).sort(), [attacker.roomId, upgraded.roomId].sort());
});
