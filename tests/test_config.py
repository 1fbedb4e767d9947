"""reconciler.yaml: validated like the manifests, and resolved flag > environment > file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.commands.workspace import Flags, Settings
from reconciler.errors import ConfigError
from reconciler.load.config import ProjectConfig, load_config


def write(root: Path, text: str) -> None:
    (root / "reconciler.yaml").write_text(text, encoding="utf-8")


def test_no_file_means_every_default(tmp_path: Path) -> None:
    loaded = load_config(tmp_path)
    assert loaded.file is None
    assert loaded.config == ProjectConfig()
    assert loaded.config.apply.parallelism == 16
    assert loaded.config.apply.on_unanswered_submit == "resubmit"
    assert (loaded.config.apply.ipm.txt2img, loaded.config.apply.ipm.img2img) == (20, 10)
    assert loaded.config.state.url is None and loaded.config.state.workspace == "default"
    assert loaded.config.outputs.remote is None and loaded.config.outputs.gallery is True


def test_an_empty_file_is_every_default(tmp_path: Path) -> None:
    write(tmp_path, "# nothing set yet\n")
    assert load_config(tmp_path).config == ProjectConfig()


def test_a_full_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "state: {url: team/state.json, workspace: staging}\n"
        "outputs: {remote: 's3://team-loras/outputs', gallery: false}\n"
        "apply:\n  parallelism: 4\n  on_unanswered_submit: hold\n  ipm: {txt2img: 40}\n",
    )
    loaded = load_config(tmp_path)
    c = loaded.config
    assert (c.state.url, c.state.workspace) == ("team/state.json", "staging")
    assert (c.outputs.remote, c.outputs.gallery) == ("s3://team-loras/outputs", False)
    assert (c.apply.parallelism, c.apply.on_unanswered_submit) == (4, "hold")
    assert (c.apply.ipm.txt2img, c.apply.ipm.img2img) == (40, 10)
    assert loaded.sets("apply.ipm.txt2img") and not loaded.sets("apply.ipm.img2img")


def test_every_problem_at_once_located_with_the_fix(tmp_path: Path) -> None:
    write(
        tmp_path,
        "state:\n  wrokspace: staging\napply:\n  parallelism: 0\n"
        "  on_unanswered_submit: retry\n  ipm: {txt2img: fast}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == (
        "4 errors in reconciler.yaml:\n"
        "reconciler.yaml:2:3: state.wrokspace: unknown field; did you mean `workspace`?\n"
        "reconciler.yaml:4:16: apply.parallelism: must be between 1 and 64; got 0\n"
        'reconciler.yaml:5:25: apply.on_unanswered_submit: expected `resubmit` or `hold`; got "retry"\n'
        'reconciler.yaml:6:18: apply.ipm.txt2img: expected an integer; got "fast"'
    )


def test_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    write(tmp_path, "apply: [1, 2\n")
    with pytest.raises(ConfigError, match=r"^1 error in reconciler.yaml:\nreconciler.yaml:\d+:\d+: "):
        load_config(tmp_path)
    write(tmp_path, "- a list\n")
    with pytest.raises(ConfigError, match=r"reconciler\.yaml:1:1: expected a mapping of settings"):
        load_config(tmp_path)
    write(tmp_path, "apply: {}\n---\napply: {}\n")
    with pytest.raises(ConfigError, match="one YAML document only"):
        load_config(tmp_path)


def test_precedence_flag_then_environment_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_STATE_URL", raising=False)
    monkeypatch.delenv("RECONCILER_WORKSPACE", raising=False)
    assert Settings.make(Flags()).state_path == Path("state/state.json")
    write(tmp_path, "state: {url: from-file.json, workspace: filews}\n")
    # a workspace other than "default" lives beside the file, like Terraform's terraform.tfstate.d/<workspace>/
    assert Settings.make(Flags()).state_path == Path("from-file.json.d/filews/from-file.json")
    assert Settings.make(Flags()).workspace == "filews"
    monkeypatch.setenv("RECONCILER_STATE_URL", "from-env.json")
    monkeypatch.setenv("RECONCILER_WORKSPACE", "envws")
    assert Settings.make(Flags()).state_path == Path("from-env.json.d/envws/from-env.json")
    assert Settings.make(Flags()).workspace == "envws"
    flagged = Settings.make(Flags(state="from-flag.json", workspace="flagws"))
    assert (flagged.state_path, flagged.workspace) == (Path("from-flag.json.d/flagws/from-flag.json"), "flagws")
    assert Settings.make(Flags(state="from-flag.json", workspace="default")).state_path == Path("from-flag.json")
    # --sim keeps its own state whatever the project's backend is, unless --state says otherwise
    assert Settings.make(Flags(sim=True)).state_path == Path("state/sim.json")


def test_the_reconnect_window_from_the_file_or_the_environment(tmp_path: Path) -> None:
    from reconciler.load.config import reconnect_window

    assert reconnect_window(ProjectConfig(), None) == 60.0
    write(tmp_path, "state:\n  reconnect_window: 120\n")
    config = load_config(tmp_path).config
    assert reconnect_window(config, None) == 120.0
    assert reconnect_window(config, " 5 ") == 5.0  # the environment wins over the file
    write(tmp_path, "state:\n  reconnect_window: -1\n")
    with pytest.raises(ConfigError) as bad:
        load_config(tmp_path)
    assert str(bad.value).splitlines()[1].startswith("reconciler.yaml:2:21: state.reconnect_window: ")
    with pytest.raises(ConfigError) as bad:
        reconnect_window(ProjectConfig(), "a minute")
    assert str(bad.value) == (
        "RECONCILER_RECONNECT_WINDOW 'a minute': a number of seconds from 0 to 86400 (how long a commit keeps "
        "reconnecting to a PostgreSQL state that went away)"
    )


def test_the_test_hook_that_shortens_an_apply_s_own_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.commands.workspace import Endpoint, make_client, wait_scale

    monkeypatch.delenv("RECONCILER_TEST_WAIT_SCALE", raising=False)
    assert wait_scale() == 1.0
    whole = make_client(Endpoint("http://127.0.0.1:9", "k"))
    monkeypatch.setenv("RECONCILER_TEST_WAIT_SCALE", "0.25")
    assert wait_scale() == 0.25
    quick = make_client(Endpoint("http://127.0.0.1:9", "k"))
    assert (quick.backoff_base, quick.backoff_max) == (whole.backoff_base / 4, whole.backoff_max / 4)
    for bad in ("0", "2", "fast"):
        monkeypatch.setenv("RECONCILER_TEST_WAIT_SCALE", bad)
        with pytest.raises(ConfigError) as refused:
            wait_scale()
        expected = f"RECONCILER_TEST_WAIT_SCALE={bad!r}: expected a number greater than 0 and at most 1"
        assert str(refused.value) == expected
