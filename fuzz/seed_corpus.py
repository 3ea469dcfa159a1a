#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Inputs come from the official vectors in shared/reference/vectors/ (read only; copied, never
edited) and from what the crates' own tests send: Electrum and bitcoind JSON-RPC requests,
Moneysocket v0 beacons and messages, NIP-47 requests, Work events, REST API bodies. Files are
named by the SHA-1 of their content, as libFuzzer names what it adds. Run from anywhere:
`python3 fuzz/seed_corpus.py`.
"""

import glob
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "shared", "reference", "vectors")
CORPUS = os.path.join(HERE, "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def vectors(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


def compact(value):
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------- Moneysocket v1 (official)

def assemble(chunks):
    """A message vector's bytes: hex chunks, and language objects as py-moneysocket dumps them."""
    out = b""
    for chunk in chunks:
        out += bytes.fromhex(chunk) if isinstance(chunk, str) else json.dumps(chunk).encode()
    return out


def moneysocket_v1():
    t = "moneysocket_v1"
    for case in vectors("moneysocket/02-beacon-encode-decode.json"):
        write(t, case["encoded"])
        write(t, case["encoded"].upper())
    for case in vectors("moneysocket/02-beacon-decode-error.json"):
        write(t, case["input"]["beacon"])
        chunks = case["input"].get("beacon_data_part_chunks")
        if chunks:
            write(t, bytes.fromhex("".join(chunks)))
    for case in vectors("moneysocket/03-wad-encode.json"):
        write(t, compact(case["wad"]))
    for case in vectors("moneysocket/03-wad-decode-error.json"):
        write(t, compact(case["input"]))
    for case in vectors("moneysocket/03-provider-info-encode.json"):
        write(t, compact(case["provider_info"]))
    for case in vectors("moneysocket/03-provider-info-decode-error.json"):
        write(t, compact(case["input"]))
    for case in vectors("moneysocket/04-message-encode-decode.json"):
        write(t, bytes.fromhex(case["encoded"]))
    for case in vectors("moneysocket/04-message-decode-error.json"):
        write(t, assemble(case["input_chunks"]))


# ---------------------------------------------------------------- Moneysocket v0

RID = "d678c107fe2913ae1ab79bfba00694aaed75b5a2b0187ea0719919cbfedf9758"
UUID_A = "a5b32936-3143-4856-bdea-7b3dda7aa5e8"
UUID_B = "b032ee60-c23c-11eb-a86b-08606ee5ade6"
V0_BEACONS = [
    # shared/reference/moneysocket.md §8 (the Go port's vectors), as crates/moneysocket/tests.
    "moneysocket1lcqqzqdmy0lqqqgph5gxsetvd3hjqenjdakjqmrfva58flsqqyquzpl7qqqsr0cpqqpwt49e",
    "moneysocket1lcqqzqdmstlqqqgph5gxsetvd3hjqenjdakjqmrfva58flsqqyquzeh7qqqsr0cpqnlqqqgpcv2qqynj"
    "v4kxz7fwwdhkx6m9wshx6mmwv4uluqqpq8z3zqq0wajkyun5vvsxsetjwpskgetjlcqqzqw8zsqpycnvw4jhgmm0w35z"
    "q6r9wfcxzer9wtlqqqgpey8qqrrwve3jq6r9wfcxzer9wgmv4l2e",
]


def v0_messages():
    base = {"timestamp": 1622048707.3, "protocol": "Moneysocket", "protocol_version": "0.0.0"}

    def request(name, **fields):
        return dict(base, message_class="REQUEST", request_uuid=UUID_A, request_name=name, **fields)

    def notify(name, **fields):
        return dict(base, message_class="NOTIFICATION", notification_uuid=UUID_B,
                    request_reference_uuid=UUID_A, notification_name=name, **fields)

    wad = {"msats": 12345, "asset_stable": False, "asset_units": 12.345, "code": "BTC",
           "countries": [], "decimals": 3, "name": "Bitcoin", "symbol": "\u20bf"}
    return [
        request("REQUEST_RENDEZVOUS", rendezvous_id=RID),
        request("REQUEST_PROVIDER"),
        request("REQUEST_PING"),
        request("REQUEST_INVOICE", msats=1000),
        request("REQUEST_PAY", bolt11="lnbcrt10n1p0000000pp5"),
        notify("NOTIFY_RENDEZVOUS", rendezvous_id=RID),
        notify("NOTIFY_RENDEZVOUS_NOT_READY", rendezvous_id=RID),
        notify("NOTIFY_RENDEZVOUS_END", rendezvous_id=RID),
        notify("NOTIFY_PROVIDER", account_uuid=UUID_A, payer=True, payee=True, wad=wad),
        notify("NOTIFY_PROVIDER_NOT_READY"),
        notify("NOTIFY_PONG"),
        notify("NOTIFY_INVOICE", bolt11="lnbcrt10n1p0000000pp5"),
        notify("NOTIFY_PREIMAGE", preimage="00" * 32, ext=None),
        notify("NOTIFY_ERROR", error_msg="no route", error_code=1),
    ]


def moneysocket_v0():
    t = "moneysocket_v0"
    for b in V0_BEACONS:
        write(t, b)
        write(t, b.upper())
    for m in v0_messages():
        write(t, json.dumps(m))
        if "wad" in m:
            write(t, compact(m["wad"]))
            write(t, compact({k: v for k, v in m.items() if k in
                              ("account_uuid", "payer", "payee", "wad")}))
    # The shared primitives (v1's vectors exercise BigSize and TLV the same way).
    for case in vectors("moneysocket/04-message-decode-error.json")[:20]:
        write(t, assemble(case["input_chunks"]))


# ---------------------------------------------------------------- secure layer

def moneysocket_secure():
    t = "moneysocket_secure"
    # Scripts of [op, position, xor, len, plaintext]: honest, tampered, replayed, raw.
    ping = json.dumps(v0_messages()[2]).encode()[:200]
    write(t, bytes([0, 0, 0, len(ping)]) + ping)
    write(t, bytes([0, 0, 0, 5]) + b"hello" + bytes([1, 20, 1, 5]) + b"world" + bytes([2, 0, 0, 0]))
    write(t, bytes([1, 4, 0x80, 3]) + b"abc" + bytes([3, 0, 0xff, 4]) + b"MSA1")
    write(t, b"MSA1\x00\x01" + bytes(33 + 32))
    write(t, b"MSA1\x01" + bytes(8 + 16))


# ---------------------------------------------------------------- MS-SMT (official leaves)

def mssmt_proof():
    t = "mssmt_proof"
    for name in ("mssmt_tree_replacement.json", "mssmt_tree_deletion.json",
                 "mssmt_tree_error_cases.json"):
        leaves = vectors("mssmt/" + name)["all_tree_leaves"]
        for start in range(0, min(len(leaves), 48), 8):
            out = bytearray([1])
            for leaf in leaves[start:start + 8]:
                key = bytes.fromhex(leaf["key"])
                value = bytes.fromhex(leaf["node"]["value"])[:16]
                out += bytes([key[0], key[31], len(value)]) + value
                out += struct.pack(">Q", int(leaf["node"]["sum"]))
            out += struct.pack(">HB", 40 + start, 1)
            write(t, bytes(out))
    # Raw: the empty tree's proof (no nodes, every sibling empty), one listed node, a record.
    write(t, bytes([0, 0, 0]) + b"\xff" * 32)
    write(t, bytes([0, 0, 1]) + bytes(range(32)) + struct.pack(">Q", 7) + b"\xfe" + b"\xff" * 31)
    write(t, bytes([0, 1]) + bytes(80))
    write(t, bytes([0, 2]) + bytes(32) + struct.pack(">Q", 5) + b"value")


# ---------------------------------------------------------------- Electrum

SH = "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
GENESIS_TX = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff00"
    "1d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b20"
    "6f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afd"
    "b0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c"
    "384df7ba0b8d578a4c702b6bf11d5fac00000000"
)
GENESIS_HEADER = (
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac7"
    "2c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f2002000000"
)


def electrum_request():
    t = "electrum_request"
    calls = [
        ("server.version", ["electrum 4.5", ["1.4", "1.6"]]),
        ("server.version", {"client_name": "bdk", "protocol_version": "1.4.2", "token": "t"}),
        ("server.features", []), ("server.banner", []), ("server.donation_address", []),
        ("server.peers.subscribe", []), ("server.add_peer", [{"hosts": {}}]), ("server.ping", None),
        ("blockchain.headers.subscribe", []),
        ("blockchain.block.header", [5]), ("blockchain.block.header", {"height": 3, "cp_height": 10}),
        ("blockchain.block.headers", [0, 10, 20]),
        ("blockchain.estimatefee", [2, "CONSERVATIVE"]), ("blockchain.relayfee", []),
        ("mempool.get_fee_histogram", []), ("mempool.get_info", []),
        ("blockchain.scripthash.get_balance", [SH]),
        ("blockchain.scripthash.get_history", [SH, 0, -1]),
        ("blockchain.scripthash.get_mempool", [SH]),
        ("blockchain.scripthash.listunspent", {"scripthash": SH}),
        ("blockchain.scripthash.subscribe", [SH]), ("blockchain.scripthash.unsubscribe", [SH]),
        ("blockchain.transaction.broadcast", [GENESIS_TX]),
        ("blockchain.transaction.broadcast_package", [[GENESIS_TX, GENESIS_TX], True]),
        ("blockchain.transaction.get", [TXID, True]),
        ("blockchain.transaction.get_merkle", [TXID, 1]),
        ("blockchain.transaction.id_from_pos", [2, 1, True]),
    ]
    batch = []
    for i, (method, params) in enumerate(calls):
        call = {"jsonrpc": "2.0", "method": method, "id": i}
        if params is not None:
            call["params"] = params
        batch.append(call)
        write(t, compact(call))
    write(t, compact(batch[:6]))
    write(t, SH)
    write(t, "1.4.2")


# ---------------------------------------------------------------- bitcoind JSON-RPC

def chain_rpc():
    t = "chain_rpc"
    block = GENESIS_HEADER + "01" + GENESIS_TX
    calls = [
        ("getblockchaininfo", []), ("getblockcount", []), ("getbestblockhash", []),
        ("getblockhash", [0]), ("getblockheader", [TXID, False]),
        ("getblock", {"blockhash": TXID, "verbosity": 2}), ("getdeploymentinfo", []),
        ("getindexinfo", ["txindex"]), ("getrawtransaction", [TXID, 2, TXID]),
        ("sendrawtransaction", [GENESIS_TX, 0.1, "0.0001"]),
        ("testmempoolaccept", [[GENESIS_TX], 0]), ("submitpackage", [[GENESIS_TX, GENESIS_TX]]),
        ("getrawmempool", [True, False]), ("getmempoolentry", [TXID]), ("getmempoolinfo", []),
        ("gettxout", [TXID, 0, True]),
        ("gettxspendingprevout", [[{"txid": TXID, "vout": 0}], {"mempool_only": True}]),
        ("estimatesmartfee", [6, "economical"]), ("submitblock", [block]),
        ("generatetoaddress", [1, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]),
        ("generatetodescriptor", [1, "raw(51)"]),
        ("generatetodescriptor", [1, "wpkh(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5)#8zl0zxma"]),
        ("generateblock", ["addr(bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080)", [GENESIS_TX], False]),
        ("invalidateblock", [TXID]), ("reconsiderblock", [TXID]), ("getnetworkinfo", []),
        ("uptime", []), ("stop", []),
    ]
    batch = []
    for i, (method, params) in enumerate(calls):
        call = {"jsonrpc": "1.0", "id": "t%d" % i, "method": method, "params": params}
        batch.append(call)
        write(t, compact(call))
    write(t, compact([dict(batch[0], jsonrpc="2.0")] + batch[1:4] + [{"jsonrpc": "2.0", "method": "uptime"}]))
    write(t, GENESIS_TX)
    write(t, bytes.fromhex(GENESIS_TX))
    write(t, bytes.fromhex(block))


# ---------------------------------------------------------------- NWC

def nwc_request():
    t = "nwc_request"
    requests = [
        {"method": "get_info", "params": {}},
        {"method": "get_balance", "params": {}},
        {"method": "pay_invoice", "params": {"invoice": "lnbcrt10n1p0000000pp5", "amount": 1000}},
        {"method": "make_invoice", "params": {"amount": 21000, "description": "coffee", "expiry": 600}},
        {"method": "lookup_invoice", "params": {"payment_hash": "ab" * 32}},
        {"method": "list_transactions", "params": {"from": 0, "until": 1800000000, "limit": 10,
                                                   "offset": 0, "unpaid": True, "type": "incoming"}},
        {"method": "make_hold_invoice", "params": {"amount": 1000, "payment_hash": "cd" * 32}},
        {"method": "settle_hold_invoice", "params": {"preimage": "ef" * 32}},
        {"method": "cancel_hold_invoice", "params": {"payment_hash": "cd" * 32}},
        {"method": "pay_keysend", "params": {"amount": 1, "pubkey": "02" + "11" * 32}},
    ]
    for r in requests:
        write(t, compact(r))
    # An event's shape (its signature does not verify: the envelope checks come first).
    write(t, compact({
        "id": "00" * 32, "pubkey": "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        "created_at": 1800000000, "kind": 23194,
        "tags": [["p", "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"],
                 ["encryption", "nip44_v2"], ["expiration", "1900000000"]],
        "content": "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "sig": "00" * 64}))
    write(t, "ab" * 32)


# ---------------------------------------------------------------- Work events

G = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"


def work_event():
    t = "work_event"
    body = {"category": "painting", "geohash": "u33dc0", "evidence_required": ["photo-after"],
            "reward": 1000, "deadline": 1800360000}
    evidence = {"items": [["photo-after", "cd" * 32]], "time": 1800007200, "geohash": "u33dc0"}
    h = ["h", "bakery"]
    task = ["task", "paint-the-oven"]
    events = [
        (30910, [["d", "paint-the-oven"], h], compact(body)),
        (3911, [task, h], ""), (3912, [task, h], ""),
        (3913, [task, h], compact(evidence)),
        (3914, [task, ["p", G], ["L", "org.moip.work"], ["l", "attested", "org.moip.work"], h], ""),
        (3915, [task, h], ""), (3916, [task, h], "worker"), (3916, [task, h], "employer"),
        (3917, [["p", G], h], ""), (3918, [["p", G], h], ""),
        (3, [["p", G], ["p", "ab" * 32], ["e", "00" * 32]], ""),
        (1984, [["p", G, "other"]], ""),
        (3919, [h, ["seq", "7"], ["e", "00" * 32], ["p", G]], compact({"status": "accepted"})),
        (3919, [h, ["seq", "8"]], compact({"status": "paid", "tasks": ["paint-the-oven"]})),
        (3919, [h, ["seq", "9"]], compact({"status": "rejected", "reason": "replayed"})),
        (30382, [["d", G], ["rank", "87"], h], ""),
    ]
    for kind, tags, content in events:
        unsigned = {"pubkey": G, "created_at": 1800000000, "kind": kind, "tags": tags,
                    "content": content}
        write(t, compact(unsigned))
        write(t, compact(dict(unsigned, id="00" * 32, sig="00" * 64)))


# ---------------------------------------------------------------- REST API bodies

def api_bodies():
    t = "api_bodies"
    task = "paint-the-oven"
    forms = [
        {"action": "post", "task": "fix-the-door", "hours": "48", "evidence": "photo, receipt",
         "geohash": "u33dc0", "category": "repairs", "reward": "1 000"},
        {"action": "claim", "task": task}, {"action": "withdraw", "task": task},
        {"action": "submit", "task": task, "evidence.photo-after": "a photo of the oven",
         "evidence.receipt": "cd" * 32, "geohash": "U33DC0"},
        {"action": "attest", "task": task, "worker": G},
        {"action": "dispute", "task": task}, {"action": "vote", "task": task, "side": "worker"},
        {"action": "certify", "subject": G},
        {"action": "vouch", "subject": "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d"},
        {"action": "redeem", "amount": "5_000", "invoice": "lightning:lnbcrt50u1p0000000pp5"},
    ]
    for form in forms:
        write(t, compact(form))
        write(t, compact({"pubkey": G, "fields": form}))
    write(t, compact({"pubkey": G, "sats": 50000}))
    write(t, compact({"pubkey": "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d", "sats": 1}))
    write(t, compact({"name": "till", "budget_sat": 10000}))
    write(t, compact({"limit_sat": None}))
    write(t, compact({"id": "00" * 32, "pubkey": G, "created_at": 1800000000, "kind": 3920,
                      "tags": [["h", "bakery"]],
                      "content": compact({"amount": 5000, "invoice": "lnbcrt50u1p0000000pp5"}),
                      "sig": "00" * 64}))


def main():
    moneysocket_v1()
    moneysocket_v0()
    moneysocket_secure()
    mssmt_proof()
    electrum_request()
    chain_rpc()
    nwc_request()
    work_event()
    api_bodies()
    for folder in sorted(glob.glob(os.path.join(CORPUS, "*"))):
        files = os.listdir(folder)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        print("%-20s %4d files %7d bytes" % (os.path.basename(folder), len(files), size))


if __name__ == "__main__":
    main()
