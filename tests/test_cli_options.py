"""The `k2forge` command line as a whole: no two fields share an option in any command, flags are named by the
full field path, `--quiet` works at any position, `--print-spec`/`--spec-schema`, and every `k2forge` line of
the README parses with the options the command really has."""
import json
import re
import shlex
from collections import Counter
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from api.cli import cli, hoist_global_options, main
from corpus.clispec import _fields, option_names
from corpus.spec import SpecError, job_kind

README = Path(__file__).resolve().parent.parent / "README.md"


def _walk(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def _names(cmd: click.Command) -> list[str]:
    return [n for p in cmd.params if isinstance(p, click.Option) for n in p.opts + p.secondary_opts]


COMMANDS = dict(_walk(cli))


def test_every_command_loads_and_no_option_name_is_claimed_twice():
    assert {("corpus", "ingest"), ("rephrase", "run"), ("mathnotes", "run"), ("train", "run")} <= set(COMMANDS)
    for path, cmd in COMMANDS.items():
        assert "[unavailable" not in (cmd.help or ""), f"{' '.join(path)}: {cmd.help}"
        dup = sorted(n for n, c in Counter(_names(cmd)).items() if c > 1)
        assert not dup, f"k2forge {' '.join(path)}: options claimed by more than one parameter: {dup}"


@pytest.mark.parametrize("kind", ["ingest", "dedup", "pack", "mix", "rephrase", "mathnotes", "train"])
def test_every_field_has_its_full_path_option_and_aliases_are_unique(kind):
    fields = _fields(job_kind(kind)[0])
    names = option_names(fields)
    for dotted, tp, _ in fields:
        pos, neg = names[dotted]
        assert pos[0] == "--" + ".".join(p.replace("_", "-") for p in dotted.split("."))
        assert (neg[0] == "--no-" + pos[0][2:]) if tp is bool else not neg
    claimed = Counter(n for pos, neg in names.values() for n in pos + neg)
    assert max(claimed.values()) == 1


def _print_spec(*args: str) -> dict:
    res = CliRunner().invoke(cli, [*args, "--print-spec"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return yaml.safe_load(res.output)


def test_negative_bool_flags_set_the_field_they_name():
    spec = _print_spec("rephrase", "run", "--inputs", "in", "--output", "out", "--no-engine.enforce-eager")
    assert spec["engine"]["enforce_eager"] is False
    assert spec["verifier"]["judge_engine"] is None                       # the judge's engine is untouched
    spec = _print_spec("rephrase", "run", "--inputs", "in", "--output", "out", "--engine.enforce-eager",
                       "--no-verifier.judge-engine.enforce-eager")
    assert spec["verifier"]["judge_engine"]["enforce_eager"] is False and spec["engine"]["enforce_eager"] is True
    spec = _print_spec("mathnotes", "run", "--inputs", "in", "--output", "out", "--verifier.judge",
                       "--no-translate-verifier.judge")
    assert spec["verifier"]["judge"] is True and spec["translate_verifier"]["judge"] is False
    # `--no-judge` would be ambiguous in mathnotes (two verifiers): it is not an option there ...
    res = CliRunner().invoke(cli, ["mathnotes", "run", "--inputs", "in", "--output", "out", "--no-judge"])
    assert res.exit_code == 2 and "No such option '--no-judge'" in res.output
    # ... while rephrase, with one field called judge, keeps the short alias
    assert _print_spec("rephrase", "run", "--inputs", "i", "--output", "o", "--no-judge")["verifier"]["judge"] is False


def test_engine_flags_cover_every_backend_and_a_wrong_backend_field_is_named(tmp_path):
    spec = _print_spec("rephrase", "run", "--inputs", "i", "--output", "o", "--engine.batch-size", "4")
    assert spec["engine"]["kind"] == "local" and spec["engine"]["batch_size"] == 4    # only local has it
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    assert _print_spec("rephrase", "run", "--spec", str(tmp_path / "s.yaml")) == spec
    spec = _print_spec("mathnotes", "run", "--inputs", "i", "--output", "o", "--engine.base-url", "http://x/v1",
                       "--engine.api-key-env", "K", "--verifier.judge-engine.threads", "2")
    assert spec["engine"]["kind"] == "openai" and "threads" not in spec["engine"]
    assert spec["verifier"]["judge_engine"] == {"kind": "llamacpp", "model": None, "max_concurrency": 8,
                                                "context_length": None, "threads": 2}
    with pytest.raises(SpecError, match=r"engine\.openai: .*threads is not a field of engine kind 'openai' "
                                        r"\(a field of kinds llamacpp, local\)"):
        CliRunner().invoke(cli, ["rephrase", "run", "--inputs", "i", "--output", "o", "--engine.kind", "openai",
                                 "--engine.base-url", "http://x/v1", "--engine.threads", "2", "--print-spec"],
                           catch_exceptions=False)


def test_print_spec_reads_back_and_spec_schema_is_json_schema(tmp_path):
    first = _print_spec("corpus", "dedup", "--inputs", "a", "--output", "b", "--text-norm.lowercase",
                        "--executor-workers", "2", "--threshold", "0.7")
    assert first["executor"]["workers"] == 2 and first["text_norm"]["lowercase"] is True
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(first))
    assert _print_spec("corpus", "dedup", "--spec", str(tmp_path / "s.yaml")) == first
    res = CliRunner().invoke(cli, ["rephrase", "run", "--spec-schema"], catch_exceptions=False)
    schema = json.loads(res.output)
    assert res.exit_code == 0 and {"inputs", "output", "engine"} <= set(schema["properties"])


def test_quiet_and_log_level_work_at_any_position(tmp_path, capsys):
    assert hoist_global_options(["corpus", "ingest", "--inputs", "a", "-q", "--log-level", "ERROR", "--", "-q"]) \
        == ["-q", "--log-level", "ERROR", "corpus", "ingest", "--inputs", "a", "--", "-q"]
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one document", "domain": "web"}\n')
    main(["corpus", "ingest", "--inputs", str(src), "--output", str(tmp_path / "out"), "--quiet"])
    assert json.loads(capsys.readouterr().out)["rows_out"] == 1


def _readme_commands() -> list[list[str]]:
    """Every `k2forge ...` line inside the README's fenced code blocks, as argv (comments dropped)."""
    lines, fenced = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced and line.startswith("k2forge "):
            lines.append(shlex.split(line, comments=True)[1:])
    return lines


def test_every_readme_command_uses_options_the_command_has():
    cmds = _readme_commands()
    assert len(cmds) >= 10
    for argv in cmds:
        words = [a for a in argv if not a.startswith("-")]
        path = next((tuple(words[:n]) for n in (2, 1) if tuple(words[:n]) in COMMANDS), None)
        assert path, f"README: k2forge {' '.join(argv)}: no such command"
        opts = set(_names(COMMANDS[path])) | {"--quiet", "-q", "--log-level"}
        unknown = [a for a in argv if re.match(r"--?[a-zA-Z]", a) and a.split("=")[0] not in opts]
        assert not unknown, f"README: k2forge {' '.join(argv)}: unknown option(s) {unknown}"
        if path == ("pipeline", "run"):                     # every step validates (nothing runs)
            res = CliRunner().invoke(cli, [*argv, "--dry-run"], catch_exceptions=False)
            assert res.exit_code == 0, res.output
        elif path[-1] == "run" or path[0] == "corpus":
            if not {"--spec", "--config"} & set(argv):      # the spec resolves (nothing runs)
                _print_spec(*argv)
