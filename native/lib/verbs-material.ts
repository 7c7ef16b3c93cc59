// Handshake material of the verbs transport: what one side needs to bring its QPs to RTR/RTS towards the other.
// The reader sends its NICs and QPs; the server answers with one QP per reader QP, in the same order, so every RC
// pair is one-to-one whatever the NIC counts on each side. No rkey travels here: grants carry window keys.
//
// Layout (little-endian) after the common header (kind verbs, version 2):
//   u8 nic count, per NIC: gid[16] u16 lid u8 mtu (ibv_mtu 1..5)
//   u8 rdAtom (reader: READs it keeps outstanding per QP; server: READs it serves at once per QP)
//   u16 qp count, per QP: u8 nic index, u32 qpn, u32 psn
import { materialHeader, readMaterialHeader } from './transport.js';

export interface VerbsNicMaterial {
  gid: Buffer;
  lid: number;
  /** ibv_mtu enum: 1=256 … 5=4096. */
  mtu: number;
}

export interface VerbsQpMaterial {
  /** Index into `nics` of the NIC this QP lives on. */
  nic: number;
  qpn: number;
  psn: number;
}

export interface VerbsMaterial {
  nics: VerbsNicMaterial[];
  rdAtom: number;
  qps: VerbsQpMaterial[];
}

export const MAX_MATERIAL_NICS = 16;
export const MAX_MATERIAL_QPS = 1024;

export function encodeVerbsMaterial(m: VerbsMaterial): Buffer {
  const b = Buffer.alloc(1 + m.nics.length * 19 + 1 + 2 + m.qps.length * 9);
  let o = b.writeUInt8(m.nics.length, 0);
  for (const nic of m.nics) {
    nic.gid.copy(b, o, 0, 16);
    o = b.writeUInt16LE(nic.lid, o + 16);
    o = b.writeUInt8(nic.mtu, o);
  }
  o = b.writeUInt8(m.rdAtom, o);
  o = b.writeUInt16LE(m.qps.length, o);
  for (const q of m.qps) {
    o = b.writeUInt8(q.nic, o);
    o = b.writeUInt32LE(q.qpn, o);
    o = b.writeUInt32LE(q.psn, o);
  }
  return Buffer.concat([materialHeader('verbs'), b]);
}

export function parseVerbsMaterial(buf: Buffer, field = 'material'): VerbsMaterial {
  const r = readMaterialHeader(buf, field, 'verbs');
  const count = r.u8('nic count');
  if (count < 1 || count > MAX_MATERIAL_NICS) r.fail(`nic count ${count} out of range 1..${MAX_MATERIAL_NICS}`);
  const nics: VerbsNicMaterial[] = [];
  for (let i = 0; i < count; i++) {
    const gid = r.bytes(16, `nics[${i}].gid`);
    const lid = r.u16(`nics[${i}].lid`);
    const mtu = r.u8(`nics[${i}].mtu`);
    if (mtu < 1 || mtu > 5) r.fail(`nics[${i}].mtu: expected an ibv_mtu in 1..5, got ${mtu}`);
    nics.push({ gid, lid, mtu });
  }
  const rdAtom = r.u8('rdAtom');
  if (rdAtom < 1) r.fail('rdAtom: expected at least 1 outstanding READ');
  const nq = r.u16('qp count');
  if (nq < 1 || nq > MAX_MATERIAL_QPS) r.fail(`qp count ${nq} out of range 1..${MAX_MATERIAL_QPS}`);
  const qps: VerbsQpMaterial[] = [];
  for (let j = 0; j < nq; j++) {
    const nic = r.u8(`qps[${j}].nic`);
    if (nic >= count) r.fail(`qps[${j}].nic: ${nic} names no NIC (${count} listed)`);
    const qpn = r.u32(`qps[${j}].qpn`);
    const psn = r.u32(`qps[${j}].psn`);
    if (qpn === 0 || qpn > 0xffffff) r.fail(`qps[${j}].qpn: expected 1..0xffffff, got ${qpn}`);
    if (psn > 0xffffff) r.fail(`qps[${j}].psn: expected a 24-bit value, got ${psn}`);
    qps.push({ nic, qpn, psn });
  }
  r.end();
  return { nics, rdAtom, qps };
}
