"""The `k2forge` command line. Each package contributes one command group from its own `cli` module.

Groups load lazily (only the one invoked is imported), so `k2forge corpus --help` never imports torch.
To add a group, add it to `GROUPS`; do not add placeholder commands for packages that are not built yet.
A command that belongs in a lower package's group but is built a layer up (`corpus demo` and `train evidence`
are pipelines) is named in `EXTRA_COMMANDS` and attached when its group loads.
"""
from __future__ import annotations

import importlib
import sys

import click

#: command name -> "module:click_object"
GROUPS: dict[str, str] = {
    "corpus": "corpus.cli:corpus",
    "rephrase": "rephrase.cli:rephrase",
    "mathnotes": "mathnotes.cli:mathnotes",
    "train": "trainer.cli:train",
    "evidence": "evidence.cli:evidence",
    "pipeline": "pipeline.cli:pipeline",
    "demo": "pipeline.demo.cli:demo",
    "serve": "api.server:serve",
}


#: group -> {command: "module:click_object"}: commands a higher layer adds to a lower package's group (the
#: corpus demo and the MuonClip evidence are pipelines; corpus and trainer name no package above them)
EXTRA_COMMANDS: dict[str, dict[str, str]] = {
    "corpus": {"demo": "pipeline.corpus_demo:demo_cmd"},
    "train": {"evidence": "pipeline.muonclip_evidence:evidence_cmd"},
}


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(GROUPS))

    def get_command(self, ctx, name):
        if name in GROUPS:
            group = _load(GROUPS[name])
            for sub, target in EXTRA_COMMANDS.get(name, {}).items():
                if sub not in group.commands:
                    group.add_command(_load(target), sub)
            return group
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), help="Logging level.")
def cli(quiet: bool, log_level: str) -> None:
    """k2forge: rewrite a raw corpus into a better pretraining corpus, and pretrain a Kimi-K2-style model on it."""
    from corpus.log import setup_logging
    setup_logging(log_level, quiet)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move `--quiet`/`-q` and `--log-level LEVEL` to the front, so they work after the command too
    (`k2forge corpus ingest ... --quiet`); nothing after a `--` separator is touched."""
    head, rest, i = [], [], 0
    end = argv.index("--") if "--" in argv else len(argv)
    while i < end:
        a = argv[i]
        if a in ("--quiet", "-q") or a.startswith("--log-level="):
            head.append(a)
        elif a == "--log-level" and i + 1 < end:
            head += [a, argv[i + 1]]
            i += 1
        else:
            rest.append(a)
        i += 1
    return head + rest + argv[end:]


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors (bad specs, bad input files) print one clear message and exit 2, no traceback."""
    from corpus.schema import SchemaError
    from corpus.spec import SpecError
    argv = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=argv, prog_name="k2forge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (SpecError, SchemaError, FileNotFoundError, ValueError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
