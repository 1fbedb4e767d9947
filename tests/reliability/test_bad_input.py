"""Bad-input corpus through the whole CLI: every malformed manifest set stops `plan` and `apply` with a located
`file:line:col` message and exit 1, no traceback, no network error shown (plan starts reading the training
list while the manifests load, and abandons it), and the state folder and the output folder byte-identical
afterwards. Plus a hypothesis fuzz: random YAML and random field values never give a traceback."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.state import GenerationEntry
from reconciler.state.file import StateStore
from tests.manifest_helpers import DATASET, GENERATION, MODEL, image_bytes, project
from tests.reliability.cli_inprocess import closed_port_url, run_main
from tests.test_manifest_invalid import CASES

REPO = Path(__file__).resolve().parents[2]
LOCATED = re.compile(r"^(?:Error: )?[^\s:][^:]*:\d+:\d+: ", re.M)


def _extra_cases(outside: Path) -> list[tuple[str, dict[str, str | bytes | None], list[str]]]:
    """Inputs the loader table does not have: hostile sizes, aliases, symlinks out of the project."""
    big_prompt = "x" * 2_000_000
    many_docs = "---\n".join(GENERATION.replace("name: gen", f"name: gen{i}") + f"  stepz: {i}\n" for i in range(3))
    return [
        ("huge-document", {"m/gen.yaml": GENERATION.replace("prompt: hello", f"prompt: {big_prompt}")}, []),
        ("huge-list", {"m/ds.yaml": DATASET + "".join(f"    - ../img/a{i}.jpg\n" for i in range(5000))}, []),
        ("alias-cycle", {"m/gen.yaml": GENERATION + "  embeddings: &e [*e]\n"}, []),
        (
            "alias-bomb",
            {
                "m/gen.yaml": GENERATION.replace("spec:\n", "x0: &a0 [q, q, q, q, q, q, q, q, q]\n")
                + "".join(f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n" for i in range(1, 9))
            },
            [],
        ),
        ("non-utf8-latin1", {"m/gen.yaml": GENERATION.replace("hello", "caf\xe9").encode("latin-1")}, []),
        ("binary-garbage", {"m/gen.yaml": bytes(range(256)) * 4}, []),
        ("bom-and-nul", {"m/gen.yaml": b"\xef\xbb\xbf" + GENERATION.encode() + b"\x00\x00"}, []),
        (
            "symlink-image-out-of-project",
            {"img/a.jpg": None, "m/ds.yaml": DATASET, "@link img/a.jpg": str(outside)},
            [],
        ),
        ("many-docs-unknown-key", {"m/gen.yaml": many_docs}, []),
        (
            "init-image-oversized",
            {
                "m/gen.yaml": GENERATION.replace("spec:\n", "spec:\n  type: img2img\n  init_image: ../big.png\n"),
                "big.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024 + 1),
            },
            [],
        ),
        ("model-width-float", {"m/lm.yaml": MODEL + "  width: 512.5\n"}, []),
        ("generation-loras-not-a-list", {"m/gen.yaml": GENERATION + "  loras: {model: lm}\n"}, []),
    ]


def _build(root: Path, files: dict[str, str | bytes | None]) -> None:
    links = {k.split(" ", 1)[1]: v for k, v in files.items() if k.startswith("@link ")}
    project(root, {k: v for k, v in files.items() if not k.startswith("@link ")})
    for name, target in links.items():
        (root / name).unlink(missing_ok=True)
        (root / name).symlink_to(str(target))


def _seed_state(root: Path) -> None:
    """A real state file with a backup, a lock file and a downloaded image: all must stay byte-identical."""
    store = StateStore(root / "state/state.json")
    store.state.resources["Generation/gen"] = GenerationEntry(name="gen", identity="0" * 64)
    store.save()
    store.save()
    (root / "out/kept").mkdir(parents=True, exist_ok=True)
    (root / "out/kept/gen-1.png").write_bytes(image_bytes("PNG", seed=9))


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for folder in ("state", "out"):
        for p in sorted((root / folder).rglob("*")):
            key = str(p.relative_to(root))
            out[key] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "sk-bad-input-never-used")
    monkeypatch.setenv("NOVITA_API_BASE", closed_port_url())
    monkeypatch.setenv("NO_COLOR", "1")


def _check(code: int, out: str, err: str, expected: list[str], label: str, root: Path) -> None:
    expected = [e.replace("<ROOT>", str(root)).replace("<PARENT>", str(root.parent)) for e in expected]
    assert "Traceback" not in err, f"{label}: {err}"
    assert code == 1, f"{label}: exit {code}\n{out}{err}"
    assert out == "", f"{label}: {out}"
    assert err.startswith("Error: "), f"{label}: {err}"
    assert LOCATED.search(err), f"{label}: no file:line:col in {err}"
    for line in expected:
        assert line in err, f"{label}: {line!r} not in {err}"
    assert "Connect" not in err and "refused" not in err, f"{label}: a network call was made: {err}"


def test_bad_input_corpus(tmp_path: Path, offline: None, figure: Any) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(image_bytes(seed=77))
    cases = [*CASES, *_extra_cases(outside)]
    assert len(cases) >= 60
    commands = (["plan", "-f", "m"], ["apply", "--auto-approve", "-f", "m"])
    for name, files, expected in cases:
        root = tmp_path / name
        root.mkdir()
        _build(root, files)
        _seed_state(root)
        before = _digest(root)
        for args in commands:
            code, out, err = run_main(args, root)
            _check(code, out, err, expected, f"{name} {args[0]}", root)
        assert _digest(root) == before, f"{name}: the state or output folder changed"
    figure(
        f"bad input: {len(cases)} malformed manifest sets x {len(commands)} commands: all exit 1 with file:line:col, "
        "0 tracebacks, 0 network errors shown, state and outputs byte-identical"
    )


SAMPLE = [
    "yaml-syntax-tab-indent",
    "yaml-not-utf8",
    "unknown-field-did-you-mean",
    "path-escapes-with-dotdot",
    "six-loras",
]


@pytest.mark.parametrize("name", SAMPLE)
def test_sample_through_a_real_process(tmp_path: Path, name: str) -> None:
    files, expected = next((c[1], c[2]) for c in CASES if c[0] == name)
    project(tmp_path, files)
    _seed_state(tmp_path)
    before = _digest(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVITA_")}
    env.update(NOVITA_API_KEY="sk-x", NOVITA_API_BASE=closed_port_url(), PYTHONPATH=str(REPO), NO_COLOR="1")
    for args in (["plan", "-f", "m"], ["apply", "--auto-approve", "-f", "m"]):
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        _check(done.returncode, done.stdout, done.stderr, expected, f"{name} {args[0]}", tmp_path)
    assert _digest(tmp_path) == before


# -------------------------------------------------------------------------------------------------- fuzz

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "512", "1e-4", "Euler a", "../../etc/passwd", "*", "~", "null", "-1", "img/a.jpg"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
BASES = {"m/ds.yaml": DATASET, "m/lm.yaml": MODEL, "m/gen.yaml": GENERATION}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc[path[0]] = _set(doc[path[0]], path[1:], value)
    return doc


@st.composite
def manifest_sets(draw: st.DrawFn) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {}
    for name, text in BASES.items():
        mode = draw(st.sampled_from(["keep", "mutate", "mutate", "raw", "bytes"]))
        if mode == "keep":
            files[name] = text
        elif mode == "raw":
            files[name] = draw(st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[]&*!|>'\"#%@`,?0123")), max_size=80))
        elif mode == "bytes":
            files[name] = draw(st.binary(max_size=60))
        else:
            doc = yaml.safe_load(text)
            for _ in range(draw(st.integers(1, 3))):
                where = draw(st.sampled_from(_paths(doc)))
                if draw(st.booleans()) and isinstance(doc, dict):
                    parent = doc
                    for key in where[:-1]:
                        parent = parent[key] if isinstance(parent, (dict, list)) else parent
                    if isinstance(parent, dict):
                        parent[draw(st.text(min_size=1, max_size=10))] = draw(VALUES)
                        continue
                doc = _set(doc, where, draw(VALUES))
            files[name] = yaml.safe_dump(doc, allow_unicode=True) if not isinstance(doc, bytes) else doc
    return files


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(files=manifest_sets())
def test_fuzz_never_a_traceback(tmp_path_factory: pytest.TempPathFactory, offline: None, files: dict[str, Any]) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    project(root, files)
    code, out, err = run_main(["plan", "--no-refresh", "-f", "m"], root)
    assert "Traceback" not in err, err
    assert code in (0, 1), (code, out, err)
    if code == 1:
        assert err.startswith("Error: ") and len(err.strip()) > 7, err
    else:
        assert "Plan: " in out or "No changes" in out, out
