#!/usr/bin/env python3
"""Regenerates src/commands/docs.json: the COMMAND DOCS entries of Redis 7.0.15
for every command and subcommand Larder has, and src/commands/keyspecs.json:
the tips and key specs COMMAND INFO reports for them.

The documentation text (summaries, argument lists, history...) comes from
Redis 7.0.15 (Copyright (c) 2006-2022, Redis Ltd., BSD-3-Clause license); this
script only copies what a running redis-server reports.

Usage: tools/gen-command-docs.py [path/to/larder-server]
  (default target/debug/larder-server; needs redis-server on PATH)

Commands Redis 7.0.15 lacks are documented by hand in
src/commands/docs_extra.json (same format), which this script never touches.

Format: a JSON object, full command name ("set", "client|kill") -> doc object
with the keys Redis reports (summary, since, group, complexity, doc_flags,
deprecated_since, replaced_by, history, arguments), minus "subcommands":
Larder lists its own subcommands from its command table. The RESP types are
fixed by the field (see src/commands/docs.rs), so plain JSON is enough.

keyspecs.json: full command name -> {"tips": [...], "key_specs": [...]}, each
key spec {"notes"?, "flags": [...], "begin_search": [type, [[name, value]...]],
"find_keys": [type, [[name, value]...]]} in Redis's reply order (see
src/commands/command.rs). Larder's command table cannot say everything Redis's
key specs say (keyword searches, several specs per command, per-spec flags),
so COMMAND INFO and COMMAND GETKEYSANDFLAGS read them from here.
"""
import json, os, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_KEYS = ["summary", "since", "group", "complexity", "doc_flags",
            "deprecated_since", "replaced_by", "history", "arguments", "subcommands"]
ARG_KEYS = ["name", "type", "display_text", "key_spec_index", "token", "summary",
            "since", "deprecated_since", "flags", "value", "arguments"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A minimal RESP3 client that keeps the reply types: (type char, value)."""

    def __init__(self, port):
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.sock.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = chr(line[0]), line[1:]
        if t in "+-":
            return (t, rest.decode())
        if t == ":":
            return (t, int(rest))
        if t == "$":
            n = int(rest)
            return (t, None) if n < 0 else (t, self.f.read(n + 2)[:-2].decode())
        if t in "*~":
            return (t, [self.read() for _ in range(int(rest))])
        if t == "%":
            return (t, [(self.read(), self.read()) for _ in range(int(rest))])
        if t == "_":
            return (t, None)
        raise ValueError("unexpected reply %r" % line)


def expect(node, kind, what):
    if node[0] != kind:
        raise ValueError("%s: expected %s, got %r" % (what, kind, node))
    return node[1]


def ordered(keys, canon, what):
    names = [k for k in keys]
    if names != [c for c in canon if c in names]:
        raise ValueError("%s: unexpected keys or order %r" % (what, names))


def convert_arg(node, what):
    pairs = expect(node, "%", what)
    ordered([expect(k, "$", what) for k, _ in pairs], ARG_KEYS, what)
    arg = {}
    for k, v in pairs:
        key = k[1]
        if key == "key_spec_index":
            arg[key] = expect(v, ":", what)
        elif key == "flags":
            arg[key] = [expect(f, "+", what) for f in expect(v, "~", what)]
        elif key == "arguments":
            arg[key] = [convert_arg(a, what) for a in expect(v, "*", what)]
        elif key in ("value", "display_text", "name", "type", "token", "summary",
                     "since", "deprecated_since"):
            arg[key] = expect(v, "$", what)
    return arg


def convert_doc(node, name, out):
    pairs = expect(node, "%", name)
    ordered([expect(k, "$", name) for k, _ in pairs], DOC_KEYS, name)
    doc = {}
    for k, v in pairs:
        key = k[1]
        if key == "doc_flags":
            doc[key] = [expect(f, "+", name) for f in expect(v, "~", name)]
        elif key == "history":
            doc[key] = [[expect(x, "$", name) for x in expect(h, "*", name)]
                        for h in expect(v, "~", name)]
        elif key == "arguments":
            doc[key] = [convert_arg(a, name) for a in expect(v, "*", name)]
        elif key == "subcommands":
            for sk, sv in expect(v, "%", name):
                convert_doc(sv, expect(sk, "$", name), out)
        else:
            doc[key] = expect(v, "$", name)
    out[name] = doc


def convert_pairs(node, what):
    return [[expect(k, "$", what), v[1]] for k, v in expect(node, "%", what)]


def convert_key_spec(node, what):
    spec = {}
    for k, v in expect(node, "%", what):
        key = expect(k, "$", what)
        if key == "notes":
            spec["notes"] = expect(v, "$", what)
        elif key == "flags":
            spec["flags"] = [expect(f, "+", what) for f in expect(v, "~", what)]
        elif key in ("begin_search", "find_keys"):
            fields = dict((expect(a, "$", what), b) for a, b in expect(v, "%", what))
            spec[key] = [expect(fields["type"], "$", what),
                         convert_pairs(fields["spec"], what)]
        else:
            raise ValueError("%s: unexpected key spec field %s" % (what, key))
    return spec


def convert_info(node, out):
    """One COMMAND INFO entry (and its subcommands) -> out[name]."""
    fields = expect(node, "*", "COMMAND INFO")
    name = expect(fields[0], "$", "name")
    out[name] = {
        "tips": [expect(t, "$", name) for t in expect(fields[7], "~", name)],
        "key_specs": [convert_key_spec(s, name) for s in expect(fields[8], "~", name)],
    }
    subs = fields[9]
    if subs[0] == "*":
        for sub in subs[1]:
            convert_info(sub, out)


def main():
    larder_bin = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "target", "debug", "larder-server")
    rport, lport = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    larder = subprocess.Popen([larder_bin, "--port", str(lport)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc, lc = Conn(rport), Conn(lport)
        expect(rc.cmd("HELLO", "3"), "%", "HELLO")
        names = sorted(n[1].lower() for n in expect(lc.cmd("COMMAND", "LIST"), "*", "LIST"))
        all_docs = {}
        for k, v in expect(rc.cmd("COMMAND", "DOCS"), "%", "COMMAND DOCS"):
            convert_doc(v, k[1], all_docs)
        docs = {n: all_docs[n] for n in names if n in all_docs}
        missing = [n for n in names if n not in all_docs]
        path = os.path.join(ROOT, "src", "commands", "docs.json")
        with open(path, "w") as f:
            json.dump(docs, f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        print("wrote %d entries to %s" % (len(docs), path))
        if missing:
            print("not in Redis (document them in docs_extra.json): " + " ".join(missing))
        all_info = {}
        for entry in expect(rc.cmd("COMMAND", "INFO"), "*", "COMMAND INFO"):
            convert_info(entry, all_info)
        info = {n: all_info[n] for n in names if n in all_info}
        path = os.path.join(ROOT, "src", "commands", "keyspecs.json")
        with open(path, "w") as f:
            json.dump(info, f, indent=1, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        print("wrote %d entries to %s" % (len(info), path))
    finally:
        redis.terminate()
        larder.terminate()
        redis.wait()
        larder.wait()


if __name__ == "__main__":
    main()
