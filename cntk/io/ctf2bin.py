"""Command line CTF -> CBF converter with the arguments of CNTK's ``Scripts/ctf2bin.py``::

    python -m cntk.io.ctf2bin --input data.ctf --header header.txt --chunk_size 33554432 \\
        --output data.cbf [--precision float|double]

The header file lists one stream per line: ``<name> <alias> <dense|sparse> <dimension>``, where
``name`` is the stream's name in the CBF file and ``alias`` its name in the CTF file.
"""

import argparse
import sys

from .streams import StreamDef, StreamDefs


def read_header(path):
    """``StreamDefs`` from a ctf2bin header file."""
    streams = {}
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4 or fields[2].lower() not in ("dense", "sparse") or not fields[3].isdigit():
                raise ValueError("%s:%d: expected '<name> <alias> <dense|sparse> <dimension>', found %r"
                                 % (path, number, line.strip()))
            name, alias, kind, dim = fields
            if name in streams:
                raise ValueError("%s:%d: stream %r is listed twice" % (path, number, name))
            streams[name] = StreamDef(field=alias, shape=int(dim), is_sparse=kind.lower() == "sparse")
    if not streams:
        raise ValueError("%s lists no streams" % (path,))
    return StreamDefs(**streams)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cntk.io.ctf2bin",
        description="Transforms a CNTK Text Format file into CNTK binary format given a header.")
    parser.add_argument("--input", required=True, help="CNTK Text Format file to convert to binary.")
    parser.add_argument("--header", required=True, help="Header file describing each stream in the input.")
    parser.add_argument("--chunk_size", type=int, required=True, help="Chunk size in bytes.")
    parser.add_argument("--output", required=True, help="Name of the output file.")
    parser.add_argument("--precision", choices=["float", "double"], default="float",
                        help="Floating point precision (double or float). Default is float.")
    args = parser.parse_args(argv)
    from .cbf import ctf_to_cbf
    try:
        ctf_to_cbf(args.input, args.output, read_header(args.header), args.chunk_size, args.precision)
    except (OSError, ValueError) as e:
        print("ctf2bin: error: %s" % (e,), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
