"""Command-line flags made from a config dataclass: each setting's name, default and help written once.

A field becomes ``--field-name``; a bool that defaults to False becomes ``--name`` (store true), one
that defaults to True ``--no-name`` (store false). ``setting(default, help, ...)`` declares a field
with its help and, where needed, ``choices``, ``metavar``, ``default_text`` (what the default means,
when the value alone would not say: ``None`` is often "as the search decides"), ``repeat`` (a
repeatable flag whose list of values ``repeat(values)`` turns into the field's value), ``flag=False``
(no flag) and ``defining=False`` (a search setting that a ``--resume`` may change).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing


def setting(default, help: str, **meta):
    """A dataclass field with its default and, in its metadata, its help and flag options."""
    meta["help"] = help
    if default is dataclasses.MISSING:  # a required setting (kw_only dataclasses allow it anywhere)
        return dataclasses.field(metadata=meta)
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def flag_name(f: dataclasses.Field) -> str:
    """``--max-epochs``; ``--no-amp`` for a bool that is on by default."""
    name = f.name.replace("_", "-")
    return f"--no-{name}" if field_default(f) is True else f"--{name}"


def _value_type(hint):
    """``int`` for ``int`` and ``int | None``; None for bools and anything argparse should not convert."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float, str) else None


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States each flag's default once: the help's own "(default: ...)", else the value; none for on/off flags."""

    def _get_help_string(self, action):
        help = action.help or ""
        if "(default:" in help or isinstance(action.default, bool) or action.default in (None, []):
            return help
        return super()._get_help_string(action)


def add_config_args(parser, cls, *, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                    defaults: dict | None = None) -> None:
    """Add a flag for each field of ``cls`` (less ``skip``; only ``only``, in its order, when given), with
    ``defaults`` replacing the fields' own. ``parser`` may be an argument group.

    The help says the default with ``DefaultsHelpFormatter`` (or ``ArgumentDefaultsHelpFormatter``).
    """
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for f in (fields[name] for name in only) if only is not None else fields.values():
        meta = f.metadata
        if f.name in skip or meta.get("flag", True) is False or "help" not in meta:
            continue
        default = defaults.get(f.name, field_default(f))
        kwargs = {"dest": f.name, "help": meta["help"]}
        if isinstance(default, bool):
            kwargs["action"] = "store_false" if default else "store_true"
        elif "repeat" in meta:
            kwargs.update(action="append", default=[], metavar=meta.get("metavar"))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs.update(required=True, metavar=meta.get("metavar"))
        else:
            kwargs.update(default=default, type=_value_type(hints[f.name]), metavar=meta.get("metavar"))
            if "choices" in meta:
                kwargs["choices"] = tuple(meta["choices"])
            if "default_text" in meta and f.name not in defaults:
                kwargs["help"] += f" (default: {meta['default_text']})"
        parser.add_argument(flag_name(f), **kwargs)


def config_from_dict(cls, d: dict, error: type[Exception] = ValueError):
    """``cls(**d)``, refusing in one line, with the valid names, any key that is not a field of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise error(f"unknown {cls.__name__} fields {unknown}; valid: {', '.join(sorted(names))}")
    return cls(**d)


def config_kwargs(args: argparse.Namespace, cls, *, skip: tuple[str, ...] = ()) -> dict:
    """The values of ``cls``'s fields in parsed ``args``, ready for ``cls(**kwargs)``."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        kwargs[f.name] = f.metadata["repeat"](value) if "repeat" in f.metadata else value
    return kwargs


def check_finite(config, name=flag_name, error: type[Exception] = ValueError) -> None:
    """Refuse NaN and infinity in every number field: argparse's ``float`` accepts "nan" and "inf"."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise error(f"{name(f)} must be a finite number, got {value}")


def check_choices(config) -> None:
    """Raise a ValueError that lists the valid choices for each field whose value is not one of them."""
    for f in dataclasses.fields(config):
        valid, value = f.metadata.get("choices"), getattr(config, f.name)
        if valid is not None and value not in valid:
            raise ValueError(f"unknown {f.name} {value!r}; valid: {', '.join(map(str, valid))}")
