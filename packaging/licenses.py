#!/usr/bin/env python3
"""The license metadata of the packages, computed from the dependency closure.

    packaging/licenses.py            print the binary's SPDX license expression
    packaging/licenses.py --write    rewrite the files below from it
    packaging/licenses.py --check    fail if a committed file is not current

The dgecho binary links dgecho's own code and every crate it depends on
(normal dependencies, not dev, build or proc-macro ones: those are not in the
binary), on the Linux targets the packages are built for. Its license is the
SPDX AND-combination of the distinct license expressions of those crates
(cargo tree lists each crate's `license` field). That expression goes into:

  packaging/rpm/dgecho.spec   License: (Fedora: the tag covers everything
                              in the binary package)
  packaging/arch/PKGBUILD     license=() (SPDX, as Arch's RFC 16 asks)
  packaging/debian/copyright  a Comment, and one Files: stanza per crate of
                              the vendored sources (vendor/, every crate
                              Cargo.lock pins), as the source package ships
                              them all.

The text of each license named in debian/copyright comes from
packaging/licenses/NAME (Debian short names: Expat for MIT). A new license in
the closure fails here until its text is added there, and rpmlint fails until
packaging/rpm/rpmlint.toml allows it: both are the review a new license
needs.

Needs cargo, with the crates of Cargo.lock downloaded or downloadable.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = "licenses.py"
# The targets the packages are built for (PKGBUILD's arch=(), Debian's
# release architectures that matter here): the union of their closures.
TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
SPEC = "packaging/rpm/dgecho.spec"
PKGBUILD = "packaging/arch/PKGBUILD"
COPYRIGHT = "packaging/debian/copyright"


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


def cargo(*args):
    try:
        return subprocess.run(["cargo", *args], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    except FileNotFoundError:
        die("cargo not found: install Rust (see README.md)")
    except subprocess.CalledProcessError as e:
        die(f"cargo {' '.join(args)} failed:\n{e.stderr.strip()}")


def normalize(expr):
    """One spelling per expression: the old "MIT/Apache-2.0" as an OR, and the
    operands of a plain OR list sorted, so "Apache-2.0 OR MIT" and
    "MIT OR Apache-2.0" count once."""
    expr = " ".join(expr.replace("/", " OR ").split())
    if "(" in expr or " AND " in expr:
        return expr
    return " OR ".join(sorted(expr.split(" OR ")))


def closure_licenses():
    args = ["tree", "--locked", "--edges", "no-build,no-dev,no-proc-macro",
            "--prefix", "none", "--format", "{p}|{l}"]
    for t in TARGETS:
        args += ["--target", t]
    found = {}
    for line in cargo(*args).splitlines():
        if "|" not in line:
            continue
        pkg, lic = line.rsplit("|", 1)
        lic = lic.replace("(*)", "").strip()
        if not lic:
            die(f"{pkg} has no license field in its Cargo.toml: decide its license by hand")
        found.setdefault(normalize(lic), set()).add(pkg.split()[0])
    return found


def spdx_and(exprs):
    """Simple identifiers first, then compound expressions in parentheses."""
    simple = sorted(e for e in exprs if " " not in e)
    compound = sorted(f"({e})" for e in exprs if " " in e)
    return " AND ".join(simple + compound)


def dep5(expr):
    """SPDX to Debian copyright-format short names."""
    expr = re.sub(r"\bMIT\b", "Expat", expr)
    # SPDX "X WITH NAME-exception" is "X with NAME exception" in DEP-5.
    expr = re.sub(r" WITH (\S+)-exception\b", r" with \1 exception", expr)
    return expr.replace(" OR ", " or ").replace(" AND ", " and ").replace(" WITH ", " with ")


def dep5_names(expr):
    names = set()
    for part in re.split(r"\s+(?:and|or)\s+", expr.replace("(", " ").replace(")", " ")):
        part = part.strip()
        if part:
            names.add(part)
    return names


def vendored_crates():
    meta = json.loads(cargo("metadata", "--locked", "--format-version", "1"))
    pkgs = [p for p in meta["packages"] if p["source"]]
    count = {}
    for p in pkgs:
        count[p["name"]] = count.get(p["name"], 0) + 1
    out = []
    for p in sorted(pkgs, key=lambda p: (p["name"], p["version"])):
        # cargo vendor's directory names: NAME, or NAME-VERSION when several
        # versions of a crate are pinned.
        d = p["name"] if count[p["name"]] == 1 else f"{p['name']}-{p['version']}"
        authors = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in p.get("authors") or []]
        if not p["license"]:
            die(f"crate {p['name']} has no license field: decide its license by hand")
        out.append((d, p["name"], authors, normalize(p["license"])))
    return out


def copyright_text(binary_expr, own_license, crates):
    lines = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Upstream-Name: dgecho",
        "Upstream-Contact: dgecho developers <maintainers@users.noreply.r-seed-f1c11915.example>",
        "Comment:",
        " Generated by packaging/licenses.py from Cargo.lock and the crates'",
        " Cargo.toml (cargo metadata); do not edit by hand.",
        " .",
        " The dgecho binary statically links the Rust crates it depends on, so",
        " the binary package is under the combination of their licenses:",
        f" {dep5(binary_expr)}.",
        " The vendored crates (vendor/, the orig-vendor component tarball) are",
        " listed below, each with the license its Cargo.toml declares; their",
        " copyright notices are in their sources.",
        "",
        "Files: *",
        "Copyright: 2026 The dgecho developers",
        f"License: {dep5(own_license)}",
        "",
    ]
    used = dep5_names(dep5(own_license))
    for d, name, authors, lic in crates:
        holders = authors or [f"The {name} authors"]
        lines.append(f"Files: vendor/{d}/*")
        lines.append("Copyright: " + holders[0])
        lines += [f"           {a}" for a in holders[1:]]
        lines.append(f"License: {dep5(lic)}")
        lines.append("")
        used |= dep5_names(dep5(lic))
    for name in sorted(used):
        text_name = name.split(" with ")[0]
        path = os.path.join(ROOT, "packaging", "licenses", text_name)
        if not os.path.exists(path):
            die(f"no text for license '{text_name}': add it as packaging/licenses/{text_name}")
        body = open(path, encoding="utf-8").read().rstrip("\n").split("\n")
        if " with " in name:
            exc = re.sub(r" exception$", "-exception", name.split(" with ")[1])
            epath = os.path.join(ROOT, "packaging", "licenses", exc)
            if not os.path.exists(epath):
                die(f"no text for license exception '{exc}': add it as packaging/licenses/{exc}")
            body += [""] + open(epath, encoding="utf-8").read().rstrip("\n").split("\n")
        lines.append(f"License: {name}")
        lines += [f" {l}" if l.strip() else " ." for l in body]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def substituted(path, pattern, replacement):
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    if n != 1:
        die(f"{path}: no line matching {pattern!r} to fill in")
    return new


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("", "--write", "--check") or len(sys.argv) > 2:
        print(f"usage: packaging/{PROG} [--write|--check]", file=sys.stderr)
        sys.exit(2)
    closure = closure_licenses()
    expr = spdx_and(closure)
    if not mode:
        print(expr)
        for lic in sorted(closure):
            print(f"  {lic}: {', '.join(sorted(closure[lic]))}", file=sys.stderr)
        return
    own = normalize(json.loads(cargo("metadata", "--locked", "--no-deps", "--format-version", "1"))
                    ["packages"][0]["license"])
    files = {
        SPEC: substituted(SPEC, r"^License:.*$", f"License:        {expr}"),
        PKGBUILD: substituted(PKGBUILD, r"^license=.*$", f"license=('{expr}')"),
        COPYRIGHT: copyright_text(expr, own, vendored_crates()),
    }
    stale = []
    for path, text in files.items():
        full = os.path.join(ROOT, path)
        if open(full, encoding="utf-8").read() != text:
            stale.append(path)
            if mode == "--write":
                with open(full, "w", encoding="utf-8") as f:
                    f.write(text)
    if mode == "--check" and stale:
        die(f"not current with the dependency closure ({expr}): {', '.join(stale)}; "
            "run packaging/licenses.py --write and commit the result")
    for path in stale:
        print(f"{PROG}: updated {path}")
    if not stale:
        print(f"{PROG}: up to date: {expr}")


if __name__ == "__main__":
    main()
