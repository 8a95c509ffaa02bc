#!/usr/bin/env bash
# The engine crate's surface at a revision: public items (rustdoc's list of every public item
# of reward-actors, default features), the engine modules `src/` imports, the largest source
# file and the longest function. Issue 12's before/after figures come from here.
#
# Usage: scripts/surface.sh [REV]   (default: the working tree)
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-}
TREE=.
WORK=$(mktemp -d)
trap 'git worktree remove --force "$WORK/tree" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
if [ -n "$REV" ]; then
    git worktree add --quiet --detach "$WORK/tree" "$REV"
    TREE="$WORK/tree"
fi
echo "==> rustdoc of reward-actors at ${REV:-the working tree}" >&2
(cd "$TREE" && CARGO_TARGET_DIR="${SURFACE_TARGET_DIR:-$WORK/target}" cargo doc --quiet -p reward-actors --no-deps)
python3 - "$TREE" "${SURFACE_TARGET_DIR:-$WORK/target}/doc/reward_actors/all.html" <<'PY'
import pathlib, re, sys
tree, all_html = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
items = len(re.findall(r'<li><a href="', all_html.read_text()))
imported = set()
for path in (tree / "src").rglob("*.rs"):
    for match in re.finditer(r"reward_actors::([a-z_]+)", path.read_text()):
        imported.add(match.group(1))
files = [p for d in ("src", "actors/src") for p in (tree / d).rglob("*.rs")]
largest = max(files, key=lambda p: len(p.read_text().splitlines()))
def functions(path):
    lines = path.read_text().splitlines()
    for start, line in enumerate(lines):
        if re.match(r"\s*(pub(\([a-z]+\))? )?(async )?(const )?fn \w+", line):
            depth, seen = 0, False
            for end in range(start, len(lines)):
                depth += lines[end].count("{") - lines[end].count("}")
                seen = seen or "{" in lines[end]
                if seen and depth <= 0:
                    yield end - start + 1, path, start + 1, line.strip().split("(")[0]
                    break
longest = max(f for p in files for f in functions(p))
print(f"public items of reward-actors (rustdoc all.html): {items}")
print(f"engine modules src/ imports: {len(imported)} ({', '.join(sorted(imported))})")
print(f"largest file: {largest.relative_to(tree)} ({len(largest.read_text().splitlines())} lines)")
print(f"longest function: {longest[3]} in {longest[1].relative_to(tree)}:{longest[2]} ({longest[0]} lines)")
PY
