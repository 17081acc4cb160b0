#!/usr/bin/env python3
"""The documentation checks behind scripts/check-docs.sh (read its header for what each check means).

Usage: check_docs.py [--offline] [--only CHECK[,CHECK...]]
  checks: links, readme, examples, module-map, swift-format, commands (commands needs the broker: see the .sh)
  module-map --print: print the Mermaid block that matches Package.swift
Run from the repository root. Exit status 1 when a check fails; every failure says what to fix.
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LINKED_DOCS = [README, REPO / "CONTRIBUTING.md", REPO / "bench" / "RESULTS.md"] + sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 420
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
COMMAND_TIMEOUT = 120          # seconds for one README command
READY_ATTEMPTS = 120           # background readiness: attempts, 0.5 s apart (60 s)

failures: list[str] = []


def fail(where: str, message: str) -> None:
    failures.append(f"{where}: {message}")
    print(f"check-docs: FAIL {where}: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(f"check-docs: {message}", file=sys.stderr)


# ------------------------------------------------------------------ markdown
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


class Block:
    def __init__(self, path: Path, line: int, lang: str, body: list[str], marker: str | None):
        self.path, self.line, self.lang, self.body, self.marker = path, line, lang, body, marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def parse(path: Path) -> tuple[list[str], list[Block]]:
    """The lines outside code blocks, and the code blocks with the HTML comment just before each (if any)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    prose, blocks = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        k = start - 1
        while k >= 0 and lines[k].strip() == "":
            k -= 1
        marker = lines[k].strip() if k >= 0 and lines[k].strip().startswith("<!--") else None
        blocks.append(Block(path, start + 1, lang, lines[start + 1:j], marker))
        prose.extend([""] * (min(j, len(lines) - 1) - start + 1))   # blank out the block, keep line numbers
        i = j + 1
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = parse(path)
    seen: dict[str, int] = {}
    result = set()
    for line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


# ------------------------------------------------------------------ links
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<a\s+href=\"([^\"]+)\"")


def check_links() -> None:
    anchor_cache: dict[Path, set[str]] = {}
    for doc in LINKED_DOCS:
        if not doc.exists():
            continue
        prose, _ = parse(doc)
        for number, line in enumerate(prose, 1):
            line = re.sub(r"`[^`]*`", "", line)          # links inside inline code are not links
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue                                # http:, https:, mailto: … are not checked
                path_part, _, anchor = target.partition("#")
                dest = doc if path_part == "" else (doc.parent / path_part).resolve()
                where = f"{doc.relative_to(REPO)}:{number}"
                if not dest.exists():
                    fail(where, f"link '{target}' points to {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}, which does not exist")
                    continue
                if anchor:
                    if dest.suffix != ".md" or dest.is_dir():
                        fail(where, f"link '{target}' has an anchor but {path_part} is not a Markdown file")
                        continue
                    if dest not in anchor_cache:
                        anchor_cache[dest] = anchors(dest)
                    if anchor not in anchor_cache[dest]:
                        fail(where, f"link '{target}': no heading with anchor #{anchor} in {dest.relative_to(REPO)} "
                                    f"(anchors are the headings in lower case, spaces as '-', punctuation dropped)")


# ------------------------------------------------------------------ README shape
def check_readme_shape() -> None:
    lines = README.read_text(encoding="utf-8").split("\n")
    count = len(lines) - (1 if lines and lines[-1] == "" else 0)
    if count > MAX_README_LINES:
        fail("README.md", f"{count} lines, more than {MAX_README_LINES}: move detail to a page in docs/")
    prose, _ = parse(README)
    for number, line in enumerate(prose, 1):
        if re.match(r"^#{1,6}\s", line) and re.search(r"\b(19|20)\d\d-\d\d(-\d\d)?\b|\bsession \d+\b|\bround \d+\b", line, re.I):
            fail(f"README.md:{number}", f"dated heading '{line.strip()}': the README says what is true now; history stays in git")


# ------------------------------------------------------------------ Swift examples
# Package manifests are not library code: each is loaded by `swift package dump-package` instead of compiled, and the
# products it names must be products of this package.
MANIFEST_EXAMPLES = {"package-manifest"}


def check_manifest(block: "Block", name: str) -> None:
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "example"
        package.mkdir()
        (package / "Package.swift").write_text("\n".join(block.body) + "\n", encoding="utf-8")
        try:
            run = subprocess.run(["swift", "package", "dump-package"], cwd=package, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            fail(block.where, f"manifest example '{name}': could not run swift package dump-package ({error})")
            return
        if run.returncode != 0:
            fail(block.where, f"manifest example '{name}' does not load: {run.stderr.strip()[:300]}")
            return
    ours = set(re.findall(r'\.(?:library|executable)\(\s*name:\s*"([^"]+)"', (REPO / "Package.swift").read_text(encoding="utf-8")))
    named = {p for p in re.findall(r'\.product\(name:\s*"([^"]+)"', "\n".join(block.body))}
    missing = named - ours
    if missing:
        fail(block.where, f"manifest example '{name}' names products this package does not have: {sorted(missing)}")
    else:
        note(f"examples: manifest '{name}' loads with swift package dump-package; products {sorted(named)} exist")

def check_examples() -> None:
    names: dict[str, str] = {}
    for doc in [README] + sorted((REPO / "docs").glob("*.md")):
        for block in parse(doc)[1]:
            if block.lang != "swift":
                continue
            m = re.match(r"<!--\s*example:\s*([a-z0-9][a-z0-9-]*)\s*-->", block.marker or "")
            if not m:
                fail(block.where, "Swift block without '<!-- example: NAME -->' just before it "
                                  "(every Swift example is compiled by the test suite and needs a unique name)")
                continue
            if m.group(1) in names:
                fail(block.where, f"example name '{m.group(1)}' is also used at {names[m.group(1)]}")
            names[m.group(1)] = block.where
            # Compiled (and, for tests, run) by the DocExamplesTests target: the page and the file must not drift.
            if m.group(1) in MANIFEST_EXAMPLES:
                check_manifest(block, m.group(1))
                continue
            compiled = REPO / "Tests" / "DocExamplesTests" / f"{m.group(1)}.swift"
            text = "\n".join(block.body).rstrip("\n") + "\n"
            if not compiled.exists():
                fail(block.where, f"example '{m.group(1)}' has no compiled copy: write it to {compiled.relative_to(REPO)}")
            elif compiled.read_text(encoding="utf-8") != text:
                fail(block.where, f"example '{m.group(1)}' differs from {compiled.relative_to(REPO)}, which the test suite "
                                  f"compiles: change both")
    note(f"examples: {len(names)} named Swift examples: {', '.join(sorted(names))}")


# ------------------------------------------------------------------ module map
def call_spans(text: str, start: int) -> int:
    """Index just past the parenthesis that closes the one opening at `start`."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced parentheses in Package.swift")


def package_edges(package_swift: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Targets (.target, .executableTarget, .systemLibrary) and their string dependencies on each other."""
    text = re.sub(r"//[^\n]*", "", package_swift)
    nodes, edges = set(), set()
    pos = 0
    pattern = re.compile(r"\.(target|executableTarget|systemLibrary)\s*\(")
    while True:
        m = pattern.search(text, pos)
        if not m:
            break
        end = call_spans(text, m.end() - 1)
        body = text[m.end():end - 1]
        name = re.search(r'name:\s*"([^"]+)"', body).group(1)
        nodes.add(name)
        d = re.search(r"dependencies:\s*\[", body)
        if d:
            list_end = call_spans(body, d.end() - 1)
            deps = body[d.end():list_end - 1]
            depth, token = 0, ""
            for c in deps + ",":                     # top-level string literals only: not .product(name: "…")
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                if depth == 0 and c == ",":
                    s = re.fullmatch(r'\s*"([^"]+)"\s*', token)
                    if s:
                        edges.add((name, s.group(1)))
                    token = ""
                else:
                    token += c
        pos = end
    return nodes, edges


def mermaid_block(path: Path) -> Block | None:
    for block in parse(path)[1]:
        if block.lang == "mermaid":
            return block
    return None


def mermaid_edges(block: Block) -> set[tuple[str, str]]:
    """Edges `A --> B` (or `A --> B & C`); a node declared as `id["label"]` stands for its label."""
    labels, raw = {}, []
    for line in block.body:
        line = line.split("%%")[0].strip()
        d = re.fullmatch(r'(\w+)\["([^"]+)"\]', line)
        if d:
            labels[d.group(1)] = d.group(2)
        m = re.fullmatch(r"(\w+)\s*-->\s*(\w+(?:\s*&\s*\w+)*)\s*;?", line)
        if m:
            raw += [(m.group(1), target) for target in re.split(r"\s*&\s*", m.group(2))]
    return {(labels.get(s, s), labels.get(t, t)) for s, t in raw}


def render_mermaid(nodes: set[str], edges: set[tuple[str, str]]) -> str:
    """Mermaid ids cannot hold '-': such targets get an id with '_' and their name as the label."""
    def node_id(name: str) -> str:
        return re.sub(r"\W", "_", name)
    lines = ["```mermaid", "graph LR"]
    for name in sorted(nodes):
        if node_id(name) != name:
            lines.append(f'  {node_id(name)}["{name}"]')
    for source in sorted(nodes):
        targets = sorted(t for s, t in edges if s == source)
        if targets:
            lines.append(f"  {node_id(source)} --> {' & '.join(node_id(t) for t in targets)}")
    return "\n".join(lines + ["```"])


# The broker seam (issue #21): these never reach the transport, directly or through another target.
BEHIND_THE_SEAM = ["CeleriacWorker", "CeleriacBeat", "CeleriacCoordination", "CeleriacTesting", "CeleriacMessaging", "CeleriacBroker"]
TRANSPORT = {"AMQPTransport", "CeleriacAMQP", "CRabbitMQ"}


def check_seam() -> None:
    nodes, edges = package_edges((REPO / "Package.swift").read_text(encoding="utf-8"))
    for target in BEHIND_THE_SEAM:
        reach, todo = set(), [target]
        while todo:
            for a, b in edges:
                if a == todo[-1] and b not in reach:
                    reach.add(b)
                    todo.insert(0, b)
            todo.pop()
        if reach & TRANSPORT:
            fail("Package.swift", f"{target} reaches {sorted(reach & TRANSPORT)}: it must be built from the broker ports "
                                  f"(CeleriacBroker), never from the AMQP transport")
    note(f"seam: {', '.join(BEHIND_THE_SEAM)} do not reach {', '.join(sorted(TRANSPORT))}")


def check_module_map(print_only: bool = False) -> None:
    nodes, edges = package_edges((REPO / "Package.swift").read_text(encoding="utf-8"))
    if print_only:
        print(render_mermaid(nodes, edges))
        return
    contributing = REPO / "CONTRIBUTING.md"
    block = mermaid_block(contributing) if contributing.exists() else None
    if block is None:
        fail("CONTRIBUTING.md", "no ```mermaid block (the module map); print one with: "
                                "python3 scripts/docs/check_docs.py --module-map-print")
        return
    drawn = mermaid_edges(block)
    missing, extra = sorted(edges - drawn), sorted(drawn - edges)
    for s, t in missing:
        fail(block.where, f"module map lacks the edge {s} --> {t} (Package.swift: {s} depends on \"{t}\")")
    for s, t in extra:
        fail(block.where, f"module map has the edge {s} --> {t}, which Package.swift does not declare")
    if missing or extra:
        note("to redraw the map: python3 scripts/docs/check_docs.py --module-map-print, and paste it into CONTRIBUTING.md")
    else:
        note(f"module-map: {len(edges)} edges between {len(nodes)} targets match Package.swift")


# ------------------------------------------------------------------ .swift-format reasons
def check_swift_format() -> None:
    import json
    config_path, reasons = REPO / ".swift-format", REPO / "docs" / "contributing-style.md"
    if not config_path.exists():
        fail(".swift-format", "missing")
        return
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as error:
        fail(".swift-format", f"not valid JSON: {error}")
        return
    off = sorted(rule for rule, on in config.get("rules", {}).items() if on is False)
    text = reasons.read_text(encoding="utf-8") if reasons.exists() else ""
    for rule in off:
        if not re.search(rf"^\|\s*`{rule}`\s*\|[^|]*\S[^|]*\|", text, re.M):
            fail("docs/contributing-style.md", f"rule {rule} is turned off in .swift-format but has no row "
                                               f"'| `{rule}` | reason |' in the table of reasons")
    # The lint itself: every Swift file of the package, warnings are failures.
    import shutil
    swift = shutil.which("swift")
    if swift is None:
        fail(".swift-format", "swift not found on PATH: the lint needs `swift format` (Swift 6 toolchains include it)")
        return
    run = subprocess.run([swift, "format", "lint", "--strict", "--recursive", "--parallel", "Package.swift", "Sources", "Tests"],
                         cwd=REPO, capture_output=True, text=True)
    findings = [line for line in (run.stdout + run.stderr).splitlines() if ": warning: " in line or ": error: " in line]
    if run.returncode != 0 or findings:
        for line in findings[:40]:
            fail("swift format lint", line.replace(str(REPO) + "/", ""))
        if not findings:
            fail("swift format lint", f"exited with {run.returncode}: {(run.stdout + run.stderr).strip()[:300]}")
        else:
            fail("swift format lint", f"{len(findings)} finding(s); `swift format format -i -r Sources Tests` fixes the layout ones")
    else:
        note("swift-format: `swift format lint --strict` is clean on Package.swift, Sources and Tests")


# ------------------------------------------------------------------ README commands
MARK = re.compile(r"<!--\s*check:\s*(run|background|skip)\b\s*(.*?)\s*-->")
EXPECT = re.compile(r"\s#\s*->\s*(.*?)\s*$")


def logical_commands(body: list[str]) -> list[tuple[int, str]]:
    """(line offset, command) per command: backslash continuations joined, blank and comment lines dropped."""
    result, buffer, first = [], "", 0
    for offset, line in enumerate(body):
        if not buffer:
            first = offset
            if line.strip() == "" or line.lstrip().startswith("#"):
                continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        result.append((first, buffer + line))
        buffer = ""
    if buffer:
        result.append((first, buffer))
    return result


def split_expectation(command: str) -> tuple[str, str | None, int]:
    """The command without its `# -> …` comment, the expected output line (or None) and the exit status."""
    m = EXPECT.search(command)
    if not m:
        return command, None, 0
    expected, status = m.group(1), 0
    e = re.fullmatch(r"(.*?)\s*\(exit (\d+)\)", expected)
    if e:
        expected, status = e.group(1), int(e.group(2))
    return command[:m.start()], (expected or None), status


def squeeze(text: str) -> str:
    return " ".join(text.split())


def shell_prelude() -> str:
    """Runs in front of every README command: `celeriac-demo` on PATH is $CELERIAC_DEMO (a symlink, so that
    `exec celeriac-demo …` works and the process pool finds its own executable)."""
    bin_dir = REPO / ".run" / "check-docs" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "celeriac-demo"
    target = Path(os.environ["CELERIAC_DEMO"]).resolve()
    if link.is_symlink() and link.resolve() != target or link.exists() and not link.is_symlink():
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(target)
    return (f"set -o pipefail\ncd {shlex.quote(str(REPO))}\n"
            f"export PATH={shlex.quote(str(bin_dir))}:\"$PATH\"\n")


def run_command(where: str, command: str) -> None:
    script, expected, status = split_expectation(command)
    try:
        done = subprocess.run(["bash", "-c", shell_prelude() + script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=COMMAND_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired:
        fail(where, f"'{script.strip()}' did not finish within {COMMAND_TIMEOUT} s")
        return
    output = done.stdout
    shown = "\n".join("    | " + l for l in output.strip().split("\n")[-15:])
    if done.returncode != status:
        fail(where, f"'{script.strip()}' exited with status {done.returncode}, expected {status}; its output:\n{shown}")
        return
    if expected is not None and squeeze(expected) not in {squeeze(l) for l in output.split("\n")}:
        fail(where, f"'{script.strip()}': no output line reads '{expected}' (the README's '# ->' comment); "
                    f"its output:\n{shown}")
        return
    note(f"ok   {where}: {script.strip()}")


class Background:
    def __init__(self, where: str, script: str, ready: str | None):
        self.where, self.script, self.ready = where, script, ready
        log_dir = REPO / ".run" / "check-docs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"background-{where.replace('/', '_').replace(':', '-')}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> bool:
        if self.ready and self.probe():
            fail(self.where, f"{self.ready} already answers before the command started: something else uses that "
                             f"port (a `make run` demo?); stop it and run the check again")
            return False
        if not self.ready:
            fail(self.where, "background block without a readiness check: write <!-- check: background ready=URL -->")
            return False
        log = open(self.log_path, "w")
        # `exec`: the command itself is the session leader and gets the signals, as in a terminal.
        self.process = subprocess.Popen(["bash", "-c", shell_prelude() + "exec " + self.script.strip()],
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(READY_ATTEMPTS):
            if self.process.poll() is not None:
                fail(self.where, f"'{self.script.strip()}' exited with status {self.process.returncode} before it was "
                                 f"ready; log: {self.log_path.relative_to(REPO)}")
                return False
            if self.probe():
                note(f"ok   {self.where}: {self.script.strip()} (ready: {self.ready})")
                return True
            time.sleep(0.5)
        fail(self.where, f"'{self.script.strip()}' not ready after {READY_ATTEMPTS // 2} s ({self.ready} did not "
                         f"answer 2xx); log: {self.log_path.relative_to(REPO)}")
        return False

    def probe(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready, timeout=2) as answer:
                return 200 <= answer.status < 300
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)          # a warm shutdown, as `kill PID` gives
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            fail(self.where, f"'{self.script.strip()}' did not stop within 40 s of SIGTERM; killed it")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return
        if self.process.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            fail(self.where, f"'{self.script.strip()}' exited with status {self.process.returncode} on SIGTERM "
                             f"(expected a clean warm shutdown); log: {self.log_path.relative_to(REPO)}")
        else:
            note(f"ok   {self.where}: stopped with SIGTERM")


def check_commands(offline: bool) -> None:
    blocks = [b for b in parse(README)[1] if b.lang in SHELL_LANGS]
    plan = []
    for block in blocks:
        m = MARK.fullmatch(block.marker or "")
        if not m:
            fail(block.where, "shell block without a mark: put <!-- check: run -->, <!-- check: background ready=URL -->"
                              " or <!-- check: skip REASON --> on the line before it")
            continue
        kind, rest = m.group(1), m.group(2)
        if kind == "skip" and not rest:
            fail(block.where, "<!-- check: skip --> needs a reason: <!-- check: skip REASON -->")
        plan.append((block, kind, rest))
    if offline:
        note(f"commands: {len(plan)} marked shell blocks (not run: --offline)")
        return
    running: list[Background] = []
    try:
        for block, kind, rest in plan:
            commands = logical_commands(block.body)
            if kind == "skip":
                note(f"skip {block.where}: {rest}")
            elif kind == "run":
                for offset, command in commands:
                    run_command(f"{block.path.relative_to(REPO)}:{block.line + 1 + offset}", command)
            else:
                ready = re.search(r"ready=(\S+)", rest)
                if len(commands) != 1:
                    fail(block.where, "a background block holds exactly one command")
                    continue
                background = Background(block.where, split_expectation(commands[0][1])[0],
                                        ready.group(1) if ready else None)
                running.append(background)
                if not background.start():
                    break
    finally:
        for background in reversed(running):
            background.stop()


# ------------------------------------------------------------------ main
def main(argv: list[str]) -> int:
    if "--module-map-print" in argv:
        check_module_map(print_only=True)
        return 0
    offline = "--offline" in argv
    only = None
    if "--only" in argv:
        only = set(argv[argv.index("--only") + 1].split(","))
    checks = [("links", check_links), ("readme", check_readme_shape), ("examples", check_examples),
              ("module-map", check_module_map), ("seam", check_seam), ("swift-format", check_swift_format),
              ("commands", lambda: check_commands(offline))]
    for name, check in checks:
        if only is None or name in only:
            check()
    if failures:
        print(f"check-docs: {len(failures)} problem(s); each line above starting with 'FAIL' says where and what "
              f"to fix", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
