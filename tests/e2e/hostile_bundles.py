#!/usr/bin/env python3
"""Hostile bundles for tests/e2e/verify_hostile.sh, made without ferry.

Reads a good signed bundle with its own raw 512-byte header parser (no
libarchive, no tarfile) and writes tampered copies by re-emitting raw
ustar/pax/GNU headers with checksums computed here. No variant is signed
again: the attacker has no key, so SHA256SUMS and SHA256SUMS.sig (the first
two members) stay byte-identical in every variant; this script asserts it.

Usage:
  hostile_bundles.py make GOOD LONG OUTDIR
      GOOD: a bundle with >= 2 manifests/ members and a models/ member (the
      demo layout: manifests/01-namespace.yaml, manifests/02-workload.yaml).
      LONG: a bundle holding a member whose name needs a pax `path` record,
      and one whose name needs the ustar prefix field.
      Writes OUTDIR/<case>.tar for every hostile case and OUTDIR/cases.tsv:
          case <TAB> file <TAB> names <TAB> what
      where names is the '|'-separated list of member names any one of
      which the refusal must name. Also writes the accepted controls
      OUTDIR/ok-identity.tar (byte-identical re-emission of GOOD) and
      OUTDIR/ok-zeros-after-end.tar, listed in OUTDIR/accepted.tsv.
      Every case is first checked against strict(), this script's own
      reading of the rules the scanner enforces: it must refuse each
      hostile case naming one of its names, and accept the controls.
  hostile_bundles.py oracle BUNDLE
      strict() on a file: "accepted: N members" (exit 0), or the member it
      refuses (exit 2).
  hostile_bundles.py sigend BUNDLE
      The offset where SHA256SUMS.sig's padded data ends.
  hostile_bundles.py sums BUNDLE
      The names SHA256SUMS lists (one a line), read from the bundle's raw
      first member.
  hostile_bundles.py tarfile-check BUNDLE
      Python's tarfile view of an accepted bundle: every member is a regular
      file, no name twice, the names are exactly SHA256SUMS's plus
      SHA256SUMS and SHA256SUMS.sig, and every member's bytes hash to what
      SHA256SUMS says. Exit 1 with a message otherwise.
  hostile_bundles.py blob-urls EXTRACTED_DIR
      "repo digest kind" lines: every manifest and blob reachable from
      index.json, by the repository its image is served under.
"""
import hashlib
import io
import json
import os
import re
import sys
import tarfile

BLOCK = 512
ZERO = bytes(BLOCK)
USTAR_MAGIC = b"ustar\x0000"  # magic "ustar\0" + version "00"
OLDGNU_MAGIC = b"ustar  \x00"  # GNU tar's pre-POSIX format

# The ClusterRoleBinding an attacker hides (issue 14).
PAYLOAD = b"""---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pwned}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:authenticated"}]
"""


def die(msg):
    sys.exit("hostile_bundles.py: " + msg)


def padded(n):
    return (n + BLOCK - 1) // BLOCK * BLOCK


def pad(data, fill=b"\0"):
    return data + fill * (padded(len(data)) - len(data))


def cstr(field):
    return field.split(b"\0", 1)[0]


def checksum(h):
    h = bytearray(h)
    h[148:156] = b" " * 8
    return sum(h)


def set_checksum(h, delta=0):
    h = bytearray(h)
    h[148:156] = b"%06o\0 " % ((checksum(h) + delta) & 0o777777)
    return bytes(h)


def octal_field(n, width):
    # what libarchive writes: width-1 octal digits and a space (size, mtime)
    return b"%0*o " % (width - 1, n)


def base256_field(n, width):
    out = bytearray(width)
    for i in range(width - 1, 0, -1):
        out[i] = n & 0xFF
        n >>= 8
    if n:
        die("base-256 value too large")
    out[0] = 0x80
    return bytes(out)


def split_name(name):
    """ustar name/prefix for NAME, or None when it does not fit."""
    b = name.encode()
    if len(b) <= 100:
        return b, b""
    for i in range(1, min(len(b), 156)):  # the longest name that fits, as libarchive splits
        if b[i : i + 1] == b"/" and len(b) - i - 1 <= 100:
            return b[i + 1 :], b[:i]
    return None


class Member:
    """One regular file of the bundle: its optional pax block, its ustar
    header, its data."""

    def __init__(self, offset, pax, paxrec, hdr, name, data):
        self.offset = offset  # of the first byte (pax header if any)
        self.pax = pax  # raw pax header block + padded pax data, or b""
        self.paxrec = paxrec  # [(keyword, value)]
        self.hdr = hdr  # the 512-byte ustar header
        self.name = name  # as the header (and pax path) declare it
        self.data = data

    def raw(self):
        return self.pax + self.hdr + pad(self.data)

    @property
    def end(self):
        return self.offset + len(self.raw())

    @property
    def data_offset(self):
        return self.offset + len(self.pax) + BLOCK


def parse_pax(data):
    recs = []
    pos = 0
    while pos < len(data):
        sp = data.index(b" ", pos)
        n = int(data[pos:sp])
        rec = data[pos : pos + n]
        if n <= sp - pos or not rec.endswith(b"\n"):
            die("malformed pax record at %d" % pos)
        k, v = rec[sp - pos + 1 : -1].split(b"=", 1)
        recs.append((k.decode(), v.decode()))
        pos += n
    return recs


def parse(buf):
    """A strict reader of what ferry writes: ustar headers, typeflag 0 or x,
    pax `path` only. Dies on anything else: the good bundles must be plain."""
    if len(buf) % BLOCK:
        die("bundle size %d is not a multiple of 512" % len(buf))
    members = []
    off = 0
    while True:
        h = buf[off : off + BLOCK]
        if len(h) < BLOCK:
            die("no end-of-archive marker")
        if h == ZERO:
            break
        start = off
        pax, recs = b"", []
        if h[156:157] == b"x":
            size = int(cstr(h[124:136]).strip() or b"0", 8)
            pdata = buf[off + BLOCK : off + BLOCK + size]
            pax = buf[off : off + BLOCK + padded(size)]
            recs = parse_pax(pdata)
            if [k for k, _ in recs] != ["path"]:
                die("unexpected pax records %r" % recs)
            off += len(pax)
            h = buf[off : off + BLOCK]
        if h[257:265] != USTAR_MAGIC:
            die("header at %d is not ustar" % off)
        if int(cstr(h[148:156]).strip(), 8) != checksum(h):
            die("bad checksum at %d" % off)
        if h[156:157] not in (b"0", b"\0"):
            die("member at %d is not a regular file" % off)
        size = int(cstr(h[124:136]).strip(), 8)
        name = cstr(h[0:100])
        if cstr(h[345:500]):
            name = cstr(h[345:500]) + b"/" + name
        name = name.decode()
        for k, v in recs:
            name = v
        data = buf[off + BLOCK : off + BLOCK + size]
        if buf[off + BLOCK + size : off + BLOCK + padded(size)].strip(b"\0"):
            die("non-zero padding in the good bundle after %s" % name)
        m = Member(start, pax, recs, h, name, data)
        members.append(m)
        off = m.end
    if buf[off:].strip(b"\0") or len(buf) - off < 2 * BLOCK:
        die("the good bundle does not end with zeros")
    return members, off


def ustar(tpl, name, size, typeflag=b"0", linkname=b"", magic=USTAR_MAGIC, size_field=None):
    """A header made from template TPL (a header ferry wrote) with NAME,
    SIZE, TYPEFLAG, LINKNAME and MAGIC, its checksum computed here."""
    h = bytearray(tpl)
    nm = split_name(name)
    if nm is None:
        die("name does not fit a ustar header: " + name)
    h[0:100] = nm[0].ljust(100, b"\0")
    h[345:500] = nm[1].ljust(155, b"\0")
    h[124:136] = size_field if size_field is not None else octal_field(size, 12)
    h[156:157] = typeflag
    h[157:257] = linkname.ljust(100, b"\0")
    h[257:265] = magic
    return set_checksum(h)


def pax_record(k, v):
    body = (" %s=%s\n" % (k, v)).encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax_block(tpl, name, records, typeflag=b"x", fill=b"\0", raw=None):
    """A pax header block (typeflag x or g) carrying RECORDS (or RAW bytes),
    followed by its padded data."""
    data = raw if raw is not None else b"".join(pax_record(k, v) for k, v in records)
    base = name.rsplit("/", 1)[-1]
    hname = (name.rsplit("/", 1)[0] + "/PaxHeader/" + base) if "/" in name else "PaxHeader/" + base
    if typeflag == b"g":
        hname = name
    hname = hname[-100:]
    return ustar(tpl, hname, len(data), typeflag) + pad(data, fill)


def archive(parts, tail=2 * ZERO):
    return b"".join(parts) + tail


class Cases:
    def __init__(self, good, outdir):
        self.buf = good
        self.members, self.marker = parse(good)
        self.outdir = outdir
        self.rows = []
        self.accepted = []
        names = [m.name for m in self.members]
        if names[:2] != ["SHA256SUMS", "SHA256SUMS.sig"]:
            die("the first members are %r" % names[:2])
        self.sig_end = self.members[1].end

    def idx(self, name):
        for i, m in enumerate(self.members):
            if m.name == name:
                return i
        die("no member " + name)

    def parts(self):
        return [m.raw() for m in self.members]

    def write(self, case, body, names, what, accepted=False):
        if body[: self.sig_end] != self.buf[: self.sig_end]:
            die(case + ": SHA256SUMS or SHA256SUMS.sig changed (the attacker has no key)")
        if body == self.buf and not accepted:
            die(case + ": the variant is the good bundle")
        # the case is right: the reference reading of the rules (strict()
        # below) refuses it naming one of NAMES, or accepts a control
        try:
            strict(body)
            if not accepted:
                die(case + ": the reference reading of the rules accepts it")
        except Refused as e:
            if accepted or not any(n in (e.member or "") for n in names):
                die("%s: the reference reading of the rules says %s, expected one of %r" % (case, e, names))
        fn = os.path.join(self.outdir, case + ".tar")
        with open(fn, "wb") as f:
            f.write(body)
        row = "%s\t%s\t%s\t%s\n" % (case, fn, "|".join(names), what)
        (self.accepted if accepted else self.rows).append(row)


def hide(m):
    """The member's data with PAYLOAD right after it (in its padding), and
    the size a hostile header would declare to reach it. For the demo's
    642-byte manifests/02-workload.yaml this is the issue's 916."""
    room = padded(len(m.data)) - len(m.data)
    payload = PAYLOAD  # 274 bytes, as in the issue
    if len(payload) > room:
        die("no room for the payload in the padding of " + m.name)
    return m.data + payload, len(m.data) + len(payload)


def make(good_path, long_path, outdir):
    os.makedirs(outdir, exist_ok=True)
    good = open(good_path, "rb").read()
    c = Cases(good, outdir)
    ms = c.members
    tpl = ms[c.idx("SHA256SUMS")].hdr

    # self-test of the emitter: re-emitting every ferry header from the
    # template gives ferry's bytes back
    for m in ms:
        if m.pax:
            continue
        if ustar(tpl, m.name, len(m.data)) != m.hdr:
            die("the emitter does not reproduce the header of " + m.name)
    ident = archive(c.parts(), good[c.marker :])
    if ident != good:
        die("identity re-emission differs from the good bundle")

    mans = [m.name for m in ms if m.name.startswith("manifests/")]
    models = [m.name for m in ms if m.name.startswith("models/")]
    if len(mans) < 2 or not models:
        die("the good bundle needs two manifests and a model, has %r %r" % (mans, models))
    MAN1, MAN2 = mans[0], mans[1]
    LAST = ms[-1].name
    MODEL = models[0]
    mdir = MODEL.rsplit("/", 1)[0]
    i1, i2 = c.idx(MAN1), c.idx(MAN2)
    m1, m2 = ms[i1], ms[i2]
    if i2 != i1 + 1:
        die("the two manifests are not adjacent")
    hidden, hsize = hide(m2)
    PWNED = "manifests/03-pwned.yaml"

    def replace(i, raw_parts, tail=None):
        p = c.parts()
        p[i : i + 1] = raw_parts
        return archive(p) if tail is None else archive(p, tail)

    def insert(i, raw_parts):
        p = c.parts()
        p[i:i] = raw_parts
        return archive(p)

    W = c.write

    # --- sizes: pax and GNU size/realsize/sparse variants, on MAN2, the
    #     ClusterRoleBinding in its padding
    def with_pax(recs, hdr=None, data=None, fill=b"\0"):
        return [pax_block(tpl, MAN2, recs, fill=fill), hdr or m2.hdr, pad(data if data is not None else hidden)]

    W("schily-realsize", replace(i2, with_pax([("SCHILY.realsize", str(hsize))])), [MAN2],
      "the issue: pax SCHILY.realsize=%d on %s (real %d), a ClusterRoleBinding in the padding" % (hsize, MAN2, len(m2.data)))
    W("gnu-sparse-realsize", replace(i2, with_pax([("GNU.sparse.realsize", str(hsize))])), [MAN2],
      "pax GNU.sparse.realsize larger than the data, payload in the padding")
    W("gnu-sparse-size", replace(i2, with_pax([("GNU.sparse.size", str(hsize))])), [MAN2],
      "pax GNU.sparse.size (sparse 0.0/0.1) larger than the data")
    W("gnu-sparse-map-0.1", replace(i2, with_pax([("GNU.sparse.size", str(hsize)), ("GNU.sparse.numblocks", "1"),
                                                  ("GNU.sparse.map", "0,%d" % hsize)])), [MAN2],
      "pax sparse 0.1: GNU.sparse.size/numblocks/map mapping %d bytes" % hsize)
    sp_map = pad(b"1\n0\n%d\n" % hsize)
    sp_data = sp_map + hidden
    W("gnu-sparse-1.0", replace(i2, [pax_block(tpl, MAN2, [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                          ("GNU.sparse.name", MAN2), ("GNU.sparse.realsize", str(hsize))]),
                                    ustar(tpl, MAN2, len(sp_data)), pad(sp_data)]), [MAN2],
      "pax sparse 1.0: GNU.sparse.major/minor/name/realsize, a sparse map block before the data")
    s = bytearray(ustar(tpl, MAN2, len(m2.data), b"S", magic=OLDGNU_MAGIC))
    s[345:500] = bytes(155)
    s[386:398] = b"%011o\0" % 0  # sparse[0].offset
    s[398:410] = b"%011o\0" % hsize  # sparse[0].numbytes
    s[482:483] = b"\0"  # isextended
    s[483:495] = b"%011o\0" % hsize  # realsize
    W("gnu-sparse-old-S", replace(i2, [set_checksum(s), pad(hidden)]), [MAN2],
      "old GNU sparse header (typeflag S, realsize %d, one sparse entry)" % hsize)
    W("pax-size-bigger", replace(i2, with_pax([("size", str(hsize))])), [MAN2],
      "pax size=%d, ustar size %d: payload in the padding" % (hsize, len(m2.data)))
    small = len(m2.data) - 42
    W("pax-size-smaller", replace(i2, with_pax([("size", str(small))], data=m2.data)), [MAN2],
      "pax size=%d, ustar size %d" % (small, len(m2.data)))
    b256 = ustar(tpl, MAN2, 0, size_field=base256_field(hsize, 12))
    W("base256-size", replace(i2, [b256, pad(hidden)]), [MAN2],
      "ustar size in base-256 = %d, data %d, payload in the padding" % (hsize, len(m2.data)))
    W("base256-vs-pax-size", replace(i2, with_pax([("size", str(len(m2.data)))], hdr=b256)), [MAN2],
      "pax size=%d but the base-256 ustar size says %d" % (len(m2.data), hsize))
    W("pax-realsize", replace(i2, with_pax([("realsize", str(hsize))])), [MAN2],
      "a bare pax realsize keyword")

    # --- other pax records
    W("pax-libarchive-xattr", replace(i2, with_pax([("LIBARCHIVE.xattr.user.x", "eQ==")], data=m2.data)), [MAN2],
      "pax LIBARCHIVE.xattr.* record")
    W("pax-mtime", replace(i2, with_pax([("mtime", "1700000000")], data=m2.data)), [MAN2],
      "pax mtime record (not something ferry writes)")
    W("pax-dup-size", replace(i2, with_pax([("size", str(len(m2.data))), ("size", str(len(m2.data)))], data=m2.data)),
      [MAN2], "pax size record twice (each equal to the ustar size)")
    bad = b"99 size=%d\n" % len(m2.data)
    # a scanner may refuse before it reaches the next header: the member before counts too
    W("pax-malformed", replace(i2, [pax_block(tpl, MAN2, None, raw=bad), m2.hdr, pad(m2.data)]), [MAN2, MAN1],
      "a pax record whose length is wrong")
    W("pax-nonzero-padding", replace(i2, with_pax([("size", str(len(m2.data)))], data=m2.data, fill=b"A")), [MAN2],
      "pax size equal to the ustar size, but the pax data's padding is not zeros")

    # --- a longer ustar size
    W("ustar-size-padding", replace(i2, [ustar(tpl, MAN2, hsize), pad(hidden)]), [MAN2],
      "ustar size %d (real %d): the payload in the padding is data" % (hsize, len(m2.data)))
    swallow = m1.data + bytes(padded(len(m1.data)) - len(m1.data)) + m2.hdr + m2.data
    p = c.parts()
    p[i1 : i2 + 1] = [ustar(tpl, MAN1, len(swallow)), pad(swallow)]
    W("ustar-size-swallow", archive(p), [MAN1],
      "%s's size covers %s's header and data (tar sees no %s)" % (MAN1, MAN2, MAN2))

    # --- holes, overlaps, padding
    W("hole-one-block", insert(i2, [ZERO]), [MAN1, MAN2], "one zero block between %s and %s" % (MAN1, MAN2))
    W("hole-two-blocks", insert(i2, [ZERO, ZERO]), [MAN1, MAN2],
      "two zero blocks (an end marker) between %s and %s, members after it" % (MAN1, MAN2))
    W("hole-three-blocks", insert(i2, [ZERO, ZERO, ZERO]), [MAN1, MAN2],
      "three zero blocks between %s and %s" % (MAN1, MAN2))
    over = padded(len(m1.data)) + 100
    W("overlap-into-next-header", replace(i1, [ustar(tpl, MAN1, over), pad(m1.data)]), [MAN1],
      "%s declares %d bytes: its data would overlap %s's header" % (MAN1, over, MAN2))
    W("overlap-short-size", replace(i2, [ustar(tpl, MAN2, 100), pad(m2.data)]), [MAN2],
      "%s declares 100 bytes: the next header would start inside its data" % MAN2)
    d = bytearray(pad(m2.data))
    d[len(m2.data)] = 0x41
    W("padding-first-byte", replace(i2, [m2.hdr, bytes(d)]), [MAN2], "non-zero first padding byte after %s" % MAN2)
    d = bytearray(pad(m2.data))
    d[-1] = 0x0A
    W("padding-last-byte", replace(i2, [m2.hdr, bytes(d)]), [MAN2], "non-zero last padding byte after %s" % MAN2)
    W("padding-payload", replace(i2, [m2.hdr, pad(hidden)]), [MAN2],
      "the ClusterRoleBinding in %s's padding, headers untouched" % MAN2)

    # --- after the end marker; truncation
    second = io.BytesIO()
    with tarfile.open(fileobj=second, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo(PWNED)
        ti.size = len(PAYLOAD)
        ti.mtime = 1700000000
        tf.addfile(ti, io.BytesIO(PAYLOAD))
    body = good[: c.marker] + 2 * ZERO + second.getvalue()
    W("second-archive", body, [LAST], "a second tar (Python tarfile, %s) after the end marker" % PWNED)
    W("second-archive-self", good + good, [LAST], "the bundle twice (what tar -i would read)")
    W("garbage-block", good + b"A" * BLOCK, [LAST], "a block of non-zero bytes after the end marker")
    W("garbage-short", good + b"junk\n", [LAST], "5 bytes after the end marker (size not a multiple of 512)")
    tail = bytearray(12 * BLOCK)
    tail[10 * BLOCK + 7] = 1
    W("garbage-after-zeros", good + bytes(tail), [LAST], "one non-zero byte deep in zeros after the end marker")
    last = ms[-1]
    cut = last.data_offset + len(last.data) // 2
    W("trunc-mid-data", good[:cut], [LAST], "cut in the middle of %s's data (final block)" % LAST)
    cut = last.data_offset + len(last.data) + (padded(len(last.data)) - len(last.data)) // 2
    W("trunc-mid-padding", good[:cut], [LAST], "cut inside %s's padding (final block)" % LAST)
    W("trunc-no-marker", good[: c.marker], [LAST], "cut right after %s's padding: no end marker" % LAST)
    W("trunc-one-zero-block", good[: c.marker + BLOCK], [LAST], "only one zero block of the end marker")
    W("trunc-mid-marker", good[: c.marker + BLOCK + 100], [LAST], "cut 100 bytes into the second zero block")
    W("trunc-mid-first-marker", good[: c.marker + 200], [LAST], "cut 200 bytes into the first zero block")

    # --- pax path renames
    W("pax-path-to-listed", replace(i2, [pax_block(tpl, MAN2, [("path", MAN1)]), m2.hdr, pad(m2.data)]),
      [MAN1, MAN2], "pax path=%s on %s's header (another listed name)" % (MAN1, MAN2))
    W("pax-path-to-unlisted", replace(i2, [pax_block(tpl, MAN2, [("path", PWNED)]), ustar(tpl, MAN2, len(PAYLOAD)), pad(PAYLOAD)]),
      [PWNED, MAN2], "pax path=%s (unlisted) on %s's header, carrying the ClusterRoleBinding" % (PWNED, MAN2))
    W("pax-path-same-short", replace(i2, [pax_block(tpl, MAN2, [("path", MAN2)]), m2.hdr, pad(m2.data)]),
      [MAN2], "pax path=%s although the name fits the ustar header" % MAN2)
    p = c.parts()
    p[i1 : i2 + 1] = [pax_block(tpl, MAN1, [("path", MAN2)]), ustar(tpl, MAN1, len(m2.data)), pad(m2.data),
                      pax_block(tpl, MAN2, [("path", MAN1)]), ustar(tpl, MAN2, len(m1.data)), pad(m1.data)]
    W("pax-path-swap", archive(p), [MAN1, MAN2],
      "pax paths swap %s and %s, data swapped too (a pax reader sees the right digests)" % (MAN1, MAN2))

    # --- member kinds and names
    W("duplicate", insert(i2 + 1, [m2.hdr, pad(m2.data)]), [MAN2], "%s twice" % MAN2)
    W("unlisted-member", insert(i2 + 1, [ustar(tpl, PWNED, len(PAYLOAD)), pad(PAYLOAD)]), [PWNED],
      "an unlisted %s (the ClusterRoleBinding) after %s" % (PWNED, MAN2))
    end = len(ms)

    def add(name, typeflag, linkname=b"", dev=None, where=end):
        h = bytearray(ustar(tpl, name, 0, typeflag, linkname))
        if dev:
            h[329:337] = b"%06o \0" % dev[0]
            h[337:345] = b"%06o \0" % dev[1]
        return insert(where, [set_checksum(h)])

    W("symlink", add(mdir + "/link", b"2", b"/etc/passwd"), [mdir + "/link"], "a symlink to /etc/passwd")
    W("hardlink", add(mdir + "/hard", b"1", MODEL.encode()), [mdir + "/hard"], "a hard link to " + MODEL)
    W("char-device", add(mdir + "/cdev", b"3", dev=(1, 3)), [mdir + "/cdev"], "a character device (1,3)")
    W("block-device", add(mdir + "/bdev", b"4", dev=(7, 0)), [mdir + "/bdev"], "a block device (7,0)")
    W("fifo", add(mdir + "/fifo", b"6"), [mdir + "/fifo"], "a FIFO")
    W("directory", add("models/extra/", b"5"), ["models/extra"], "a directory entry models/extra/")
    W("contiguous-7", replace(i2, [ustar(tpl, MAN2, len(m2.data), b"7"), pad(m2.data)]), [MAN2],
      "%s as typeflag 7 (contiguous file; GNU tar extracts it as a regular file)" % MAN2)
    W("global-pax", insert(i2, [pax_block(tpl, "pax_global_header", [("comment", "hello")], typeflag=b"g")]),
      ["pax_global_header", MAN2], "a global pax header (typeflag g) before " + MAN2)
    ln = pad(MAN2.encode() + b"\0")
    W("gnu-longname-L", insert(i2, [ustar(tpl, "././@LongLink", len(MAN2) + 1, b"L"), ln]),
      ["././@LongLink", MAN2], "a GNU long name (typeflag L) entry giving %s's name" % MAN2)
    W("gnu-longlink-K", insert(i2, [ustar(tpl, "././@LongLink", len(MAN1) + 1, b"K"), pad(MAN1.encode() + b"\0")]),
      ["././@LongLink", MAN2], "a GNU long link name (typeflag K) entry before " + MAN2)
    W("bad-checksum", replace(i2, [set_checksum(m2.hdr, 1), pad(m2.data)]), [MAN2, MAN1],
      "%s's header checksum off by one" % MAN2)
    v7 = bytearray(m2.hdr)
    v7[257:500] = bytes(243)
    W("v7-magic", replace(i2, [set_checksum(v7), pad(m2.data)]), [MAN2, MAN1],
      "%s's header without the ustar magic (v7 tar)" % MAN2)
    W("oldgnu-magic", replace(i2, [ustar(tpl, MAN2, len(m2.data), magic=OLDGNU_MAGIC), pad(m2.data)]),
      [MAN2, MAN1], "%s's header with GNU's 'ustar  \\0' magic" % MAN2)
    W("ustar-version-01", replace(i2, [ustar(tpl, MAN2, len(m2.data), magic=b"ustar\x0001"), pad(m2.data)]),
      [MAN2, MAN1], "%s's header with ustar version 01" % MAN2)

    # --- the long-name bundle: the pax path ferry writes, tampered
    lbuf = open(long_path, "rb").read()
    lc = Cases(lbuf, outdir)
    lc.rows = c.rows
    lms = lc.members
    ltpl = lms[0].hdr
    withpax = [i for i, m in enumerate(lms) if m.pax]
    withprefix = [i for i, m in enumerate(lms) if not m.pax and cstr(m.hdr[345:500])]
    if not withpax or not withprefix:
        die("the long bundle needs a pax path member and a prefix member")
    lp, lx = withpax[0], withprefix[0]
    m, mx = lms[lp], lms[lx]
    # the name m's ustar header gives (truncated); the full pax path contains it
    mu = (cstr(m.hdr[345:500]) + b"/" + cstr(m.hdr[0:100])).decode()

    def lreplace(i, raw_parts):
        p = lc.parts()
        p[i : i + 1] = raw_parts
        return archive(p)

    if archive(lc.parts(), lbuf[lc.marker :]) != lbuf:
        die("identity re-emission differs from the long bundle")
    pblock = bytearray(m.pax)
    plen = int(cstr(pblock[124:136]).strip(), 8)
    pblock[BLOCK + plen + 3] = 0x41
    lc.write("long-pax-nonzero-padding", lreplace(lp, [bytes(pblock), m.hdr, pad(m.data)]), [mu],
             "ferry's own pax path header for %s, a non-zero byte in its padding" % m.name)
    lc.write("long-pax-plus-realsize", lreplace(lp, [pax_block(ltpl, m.name, m.paxrec + [("SCHILY.realsize", "1000")]),
                                                     m.hdr, pad(m.data)]), [mu],
             "ferry's pax path for %s plus SCHILY.realsize" % m.name)
    other = m.name[:-5] + "x.bin"
    lc.write("long-pax-path-unlisted", lreplace(lp, [pax_block(ltpl, m.name, [("path", other)]), m.hdr, pad(m.data)]),
             [other, mu], "the long name's pax path changed to an unlisted long name")
    lc.write("long-pax-path-twice", lreplace(lp, [pax_block(ltpl, m.name, m.paxrec + m.paxrec), m.hdr, pad(m.data)]),
             [mu], "the pax path record twice")
    lc.write("long-pax-path-fits", lreplace(lx, [pax_block(ltpl, mx.name, [("path", mx.name)]), mx.hdr, pad(mx.data)]),
             [mx.name], "pax path for %s, whose name fits the ustar prefix/name fields" % mx.name)

    # --- accepted controls
    c.write("ok-identity", ident, [], "the good bundle re-emitted by this script (byte-identical)", accepted=True)
    c.write("ok-zeros-after-end", good + bytes(20 * BLOCK), [], "10 KiB of zeros after the end marker", accepted=True)

    with open(os.path.join(outdir, "cases.tsv"), "w") as f:
        f.writelines(c.rows)
    with open(os.path.join(outdir, "accepted.tsv"), "w") as f:
        f.writelines(c.accepted)
    print("%d hostile bundles, %d accepted controls in %s" % (len(c.rows), len(c.accepted), outdir))


class Refused(Exception):
    def __init__(self, member, reason):
        super().__init__("member '%s': %s" % (member, reason))
        self.member = member


def size_field(f):
    if f[0] & 0x80:
        return int.from_bytes(bytes([f[0] & 0x7F]) + f[1:], "big")
    return int(cstr(f).strip() or b"0", 8)


def strict(buf):
    """A reference reading of the rules the strict scanner enforces (issue
    14), used only to check this script's cases: raises Refused(member,
    reason) naming the member as the rules say, returns the member count.
    Signatures are not checked here (no variant touches them)."""
    if buf[:BLOCK] == ZERO or len(buf) < BLOCK:
        raise Refused("SHA256SUMS", "no first member")
    sums = None
    seen = set()
    last = None
    off = 0
    pax = None  # (records, header name) of a pending pax header
    while True:
        if off + BLOCK > len(buf):
            raise Refused(last, "truncated inside a header")
        h = buf[off : off + BLOCK]
        if h == ZERO:
            if pax:
                raise Refused(pax[1], "pax header without a member")
            if off + 2 * BLOCK > len(buf):
                raise Refused(last, "truncated end-of-archive marker")
            if buf[off + BLOCK : off + 2 * BLOCK] != ZERO or buf[off:].strip(b"\0") or len(buf) % BLOCK:
                raise Refused(last, "data after a zero block")
            break
        name = cstr(h[0:100])
        if cstr(h[345:500]) and h[257:265] == USTAR_MAGIC:
            name = cstr(h[345:500]) + b"/" + name
        name = name.decode("latin-1")
        if h[257:265] != USTAR_MAGIC:
            raise Refused(name, "not a ustar header")
        if int(cstr(h[148:156]).strip() or b"0", 8) != checksum(h):
            raise Refused(name, "bad checksum")
        size = size_field(h[124:136])
        t = h[156:157]
        end = off + BLOCK + padded(size)
        data = buf[off + BLOCK : off + BLOCK + size]
        if t == b"x":
            if pax:
                raise Refused(name, "two pax headers")
            # the member it describes names the refusal: its pax path once
            # that record is read, else the name its ustar header gives
            nxt = buf[end : end + BLOCK]
            target = cstr(nxt[0:100])
            if cstr(nxt[345:500]):
                target = cstr(nxt[345:500]) + b"/" + target
            target = target.decode("latin-1")
            recs = {}
            try:
                lst = parse_pax_strict(data)
            except ValueError:
                raise Refused(target, "malformed pax records")
            for k, v in lst:
                if k in recs:
                    raise Refused(recs.get("path", target), "pax %s twice" % k)
                if k not in ("path", "size"):
                    raise Refused(recs.get("path", target), "pax keyword %s" % k)
                recs[k] = v
            target = recs.get("path", target)
            if end > len(buf):
                raise Refused(target, "truncated pax data")
            if buf[off + BLOCK + size : end].strip(b"\0"):
                raise Refused(target, "non-zero pax padding")
            if "path" in recs and split_name(recs["path"]) is not None:
                raise Refused(recs["path"], "pax path for a name that fits ustar")
            pax = (recs, target)
            off = end
            continue
        if pax:
            name = pax[0].get("path", name)
        if t not in (b"0", b"\0"):
            raise Refused(name, "typeflag %r" % t)
        if end > len(buf):
            raise Refused(name, "truncated data")
        if buf[off + BLOCK + size : end].strip(b"\0"):
            raise Refused(name, "non-zero padding")
        if pax:
            recs = pax[0]
            if "size" in recs and int(recs["size"]) != size:
                raise Refused(name, "pax size disagrees")
            pax = None
        if not re.fullmatch(r"[A-Za-z0-9._+@:=,/-]+", name) or name.startswith("/") or \
                any(c in ("", ".", "..") for c in name.split("/")):
            raise Refused(name, "unsafe name")
        if name in seen:
            raise Refused(name, "twice")
        seen.add(name)
        if sums is None:
            if name != "SHA256SUMS":
                raise Refused(name, "SHA256SUMS is not first")
            sums = sums_parse(data)
        elif name != "SHA256SUMS.sig":
            if name not in sums:
                raise Refused(name, "not listed")
            if hashlib.sha256(data).hexdigest() != sums[name]:
                raise Refused(name, "digest mismatch")
        last = name
        off = end
    for n in sorted(sums):
        if n not in seen:
            raise Refused(n, "missing")
    return len(seen)


def parse_pax_strict(data):
    recs = []
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0 or not data[pos:sp].isdigit():
            raise ValueError
        n = int(data[pos:sp])
        rec = data[pos : pos + n]
        if n <= sp - pos + 2 or len(rec) != n or not rec.endswith(b"\n") or b"=" not in rec:
            raise ValueError
        k, v = rec[sp - pos + 1 : -1].split(b"=", 1)
        recs.append((k.decode("latin-1"), v.decode("latin-1")))
        pos += n
    return recs


def sums_names(path):
    buf = open(path, "rb").read(64 << 20)
    h = buf[:BLOCK]
    if cstr(h[0:100]) != b"SHA256SUMS":
        die("the first member is not SHA256SUMS")
    size = int(cstr(h[124:136]).strip(), 8)
    return sums_parse(buf[BLOCK : BLOCK + size])


def sums_parse(text):
    out = {}
    for line in text.decode().splitlines():
        mt = re.fullmatch(r"SHA256 \((.+)\) = ([0-9a-f]{64})", line)
        if not mt:
            die("bad SHA256SUMS line %r" % line)
        if mt.group(1) in out:
            die("SHA256SUMS lists %s twice" % mt.group(1))
        out[mt.group(1)] = mt.group(2)
    return out


def tarfile_check(path):
    sums = sums_names(path)
    want = sorted(list(sums) + ["SHA256SUMS", "SHA256SUMS.sig"])
    seen = []
    with tarfile.open(path, "r:") as tf:  # uncompressed only
        for ti in tf:
            if not ti.isreg():
                die("%s: tarfile sees %s as type %r" % (path, ti.name, ti.type))
            data = tf.extractfile(ti).read()
            if len(data) != ti.size:
                die("%s: %s: %d bytes read, %d declared" % (path, ti.name, len(data), ti.size))
            if ti.name in sums and hashlib.sha256(data).hexdigest() != sums[ti.name]:
                die("%s: tarfile's bytes of %s do not hash to SHA256SUMS" % (path, ti.name))
            seen.append(ti.name)
    if len(seen) != len(set(seen)):
        die("%s: tarfile sees a name twice" % path)
    if sorted(seen) != want:
        die("%s: tarfile sees %d members; not listed: %s; listed, not seen: %s"
            % (path, len(seen), sorted(set(seen) - set(want)), sorted(set(want) - set(seen))))
    print("tarfile: %d members, all regular, all hash to SHA256SUMS" % len(seen))


def blob_urls(d):
    def load(hexd):
        return json.load(open(os.path.join(d, "blobs", "sha256", hexd)))

    out = set()

    def walk(repo, desc):
        dig = desc["digest"]
        hexd = dig.split(":", 1)[1]
        out.add((repo, dig, "manifests"))
        doc = load(hexd)
        for child in doc.get("manifests", []):
            walk(repo, child)
        if "config" in doc:
            out.add((repo, doc["config"]["digest"], "blobs"))
        for layer in doc.get("layers", []):
            out.add((repo, layer["digest"], "blobs"))

    for desc in json.load(open(os.path.join(d, "index.json")))["manifests"]:
        ref = desc["annotations"]["io.containerd.image.name"]
        repo = ref.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        first = repo.split("/", 1)[0]
        if "/" not in repo:  # docker's normalisation, as serve names repositories
            repo = "docker.io/library/" + repo
        elif "." not in first and ":" not in first and first != "localhost":
            repo = "docker.io/" + repo
        walk(repo, desc)
    for repo, dig, kind in sorted(out):
        print(repo, dig, kind)


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd = sys.argv[1]
    if cmd == "make" and len(sys.argv) == 5:
        make(*sys.argv[2:5])
    elif cmd == "oracle" and len(sys.argv) == 3:
        try:
            n = strict(open(sys.argv[2], "rb").read())
        except Refused as e:
            print(e.member)
            sys.exit(2)
        print("accepted: %d members" % n)
    elif cmd == "sigend" and len(sys.argv) == 3:
        members, _ = parse(open(sys.argv[2], "rb").read())
        print(members[1].end)
    elif cmd == "sums" and len(sys.argv) == 3:
        print("\n".join(sorted(sums_names(sys.argv[2]))))
    elif cmd == "tarfile-check" and len(sys.argv) == 3:
        tarfile_check(sys.argv[2])
    elif cmd == "blob-urls" and len(sys.argv) == 3:
        blob_urls(sys.argv[2])
    else:
        die("usage: see the top of this file")


if __name__ == "__main__":
    main()
