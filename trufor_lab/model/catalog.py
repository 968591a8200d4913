"""The layer catalog: a stable, readable name for every interesting point of TruFor (and of
Noiseprint++ alone), with the hook that reads it and its shape for a given input size.

Every interesting point of the network has a stable, readable name, derived from the model's
structure (``backbone.feature_info``, ``stage_modules``, the decoders' scale projections), never
typed out by hand:

- ``noiseprint`` (Noiseprint++ map), ``noiseprint.dncnn.levelK`` (DnCNN activations),
  ``rgb.input`` / ``noiseprint.input`` (what the two encoder branches read);
- ``rgb.stageN.patch_embed``, ``rgb.stageN.blockK``, ``rgb.stageN.blockK.attention``,
  ``rgb.stageN.out`` (post-norm stage output), and the same under ``noiseprint.stageN.*``;
- ``fusion.stageN.frm.rgb``, ``fusion.stageN.frm.noiseprint`` (rectified streams),
  ``fusion.stageN.ffm`` (fused map);
- ``decoder.anomaly.c1..c4`` (per-scale embeddings, native resolution), ``decoder.anomaly.fused``,
  ``decoder.anomaly.logits`` (1/4 resolution), the same under ``decoder.confidence``;
- ``detection.stats`` (the 8 pooled statistics), ``detection.logit``.

Transformer tokens ``(B, N, C)`` are recorded as ``(B, C, H, W)`` maps. Attention maps are
``(B, heads, Hq, Wq, Hk, Wk)``: for each query pixel, its weights over the (spatially reduced)
keys.

>>> print(list_layers(model, input_size=(256, 256)))
>>> resolve_names(model, "fusion.*.ffm")       # globs -> catalog names (unknown: KeyError with hints)

Recording the tensors is :mod:`trufor_lab.model.capture`.
"""

from __future__ import annotations

import difflib
import fnmatch
import html
import weakref
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from trufor_lab.model.detection import STATISTIC_NAMES
from trufor_lab.model.encoder import BRANCHES
from trufor_lab.model.noiseprint import Noiseprint
from trufor_lab.model.segformer import tokens_to_map

__all__ = [
    "Geometry",
    "LayerRow",
    "LayerSpec",
    "LayerTable",
    "Shape",
    "catalog_and_modules",
    "layer_catalog",
    "list_layers",
    "resolve_names",
    "unknown_layer",
]

_BRANCH_TITLE = {"rgb": "RGB branch", "noiseprint": "Noiseprint++ branch"}

Shape = tuple[int, ...]
Geometry = dict[str, Any]


@dataclass(frozen=True)
class LayerSpec:
    """One catalog entry: where the hook sits and how its tensor is read.

    ``module`` is the dotted path of the hooked module (``""`` is the model itself), ``where``
    says which of its inputs/outputs is read, ``kind`` is ``map``, ``tokens`` (recorded as a
    map), ``vector`` or ``attention``.
    """

    name: str
    module: str
    where: str
    kind: str
    description: str
    hook: str = field(default="forward", repr=False)  # "forward" or "pre"
    extract: Callable[..., torch.Tensor] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    rebuild: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    shape_fn: Callable[[Geometry], Shape] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


# -- extractors -------------------------------------------------------------------------------
def _output(args: tuple, out: Any) -> torch.Tensor:
    return out


def _output_item(i: int) -> Callable[[tuple, Any], torch.Tensor]:
    return lambda args, out: out[i]


def _input_item(i: int) -> Callable[[tuple, Any], torch.Tensor]:
    return lambda args, out: args[i]


def _patch_embed_map(args: tuple, out: Any) -> torch.Tensor:
    tokens, hw = out
    return tokens_to_map(tokens, hw)


def _patch_embed_rebuild(out: Any, fmap: torch.Tensor) -> Any:
    return fmap.flatten(2).transpose(1, 2), out[1]


def _block_map(args: tuple, out: torch.Tensor) -> torch.Tensor:
    return tokens_to_map(out, args[1])


def _block_rebuild(out: Any, fmap: torch.Tensor) -> torch.Tensor:
    return fmap.flatten(2).transpose(1, 2)


# -- geometry (analytic shapes) ---------------------------------------------------------------
def _conv_out(size: int, conv: nn.Conv2d, dim: int) -> int:
    k, s, p, d = conv.kernel_size[dim], conv.stride[dim], conv.padding[dim], conv.dilation[dim]
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_hw(hw: tuple[int, int], conv: nn.Conv2d) -> tuple[int, int]:
    return _conv_out(hw[0], conv, 0), _conv_out(hw[1], conv, 1)


def _attention_keys_hw(attn: nn.Module, hw: tuple[int, int]) -> tuple[int, int]:
    return _conv_hw(hw, attn.sr) if getattr(attn, "sr_ratio", 1) > 1 else hw


def _geometry(model: nn.Module, size: tuple[int, int]) -> Geometry:
    """Spatial size of every stage for an input of ``size`` (H, W), from the modules' own conv params."""
    geo: Geometry = {"input": tuple(size), "stage_hw": {}}
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        hw = tuple(size)
        for fi in backbone.feature_info:
            pe, _, _ = backbone.stage_modules("rgb", fi.stage)
            hw = _conv_hw(hw, pe.proj)
            geo["stage_hw"][fi.stage] = hw
    return geo


# -- the catalog ------------------------------------------------------------------------------
def _module_paths(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


def _dncnn_entries(net: nn.Module, path: str, prefix: str) -> list[LayerSpec]:
    entries: list[LayerSpec] = []
    level = 0
    channels = 0
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Conv2d):
            level += 1
            channels = layer.out_channels
        elif isinstance(layer, nn.ReLU):
            c = channels
            entries.append(
                LayerSpec(
                    f"noiseprint.dncnn.level{level}",
                    f"{prefix}{i}",
                    "output",
                    "map",
                    f"Noiseprint++ DnCNN level {level} activation (after ReLU, {c} ch, full resolution)",
                    extract=_output,
                    shape_fn=lambda g, c=c: (1, c, *g["input"]),
                )
            )
    return entries


def layer_catalog(model: nn.Module) -> dict[str, LayerSpec]:
    """Every capturable point of ``model`` (TruFor or Noiseprint), name -> :class:`LayerSpec`, in forward order."""
    if isinstance(model, Noiseprint):
        out_ch = model[len(model) - 1].out_channels
        entries = [
            LayerSpec(
                "noiseprint",
                "",
                "output",
                "map",
                "Noiseprint++ map (full resolution)",
                extract=_output,
                shape_fn=lambda g: (1, out_ch, *g["input"]),
            )
        ]
        entries += _dncnn_entries(model, "", "")
        return {e.name: e for e in entries}
    if not (hasattr(model, "backbone") and hasattr(model, "dncnn")):
        raise TypeError(f"no layer catalog for {type(model).__name__}: expected TruFor or Noiseprint")

    paths = _module_paths(model)
    bb = model.backbone
    entries: list[LayerSpec] = []
    np_out = model.dncnn[len(model.dncnn) - 1].out_channels
    entries.append(
        LayerSpec(
            "noiseprint",
            paths[id(model.dncnn)],
            "output",
            "map",
            "Noiseprint++ map (DnCNN output, full resolution; absent when the forward receives noiseprint=)",
            extract=_output,
            shape_fn=lambda g: (1, np_out, *g["input"]),
        )
    )
    entries += _dncnn_entries(model.dncnn, paths[id(model.dncnn)], paths[id(model.dncnn)] + ".")
    bb_path = paths[id(bb)]
    in_ch = bb.stage_modules("rgb", 1)[0].proj.in_channels
    entries.append(
        LayerSpec(
            "rgb.input",
            bb_path,
            "input[0]",
            "map",
            "RGB branch input (ImageNet-normalised RGB)",
            hook="pre",
            extract=_input_item(0),
            shape_fn=lambda g: (1, in_ch, *g["input"]),
        )
    )
    entries.append(
        LayerSpec(
            "noiseprint.input",
            bb_path,
            "input[1]",
            "map",
            "Noiseprint++ branch input (the map tiled to 3 channels)",
            hook="pre",
            extract=_input_item(1),
            shape_fn=lambda g: (1, in_ch, *g["input"]),
        )
    )

    for fi in bb.feature_info:
        s, c, red = fi.stage, fi.channels, fi.reduction
        stage_shape = lambda g, s=s, c=c: (1, c, *g["stage_hw"][s])
        for branch in BRANCHES:
            title = _BRANCH_TITLE[branch]
            pe, blocks, norm = bb.stage_modules(branch, s)
            pre = f"{branch}.stage{s}"
            entries.append(
                LayerSpec(
                    f"{pre}.patch_embed",
                    paths[id(pe)],
                    "output[0] tokens",
                    "tokens",
                    f"{title}, stage {s}: overlapping patch embedding ({c} ch, 1/{red})",
                    extract=_patch_embed_map,
                    rebuild=_patch_embed_rebuild,
                    shape_fn=stage_shape,
                )
            )
            for k, blk in enumerate(blocks):
                entries.append(
                    LayerSpec(
                        f"{pre}.block{k}",
                        paths[id(blk)],
                        "output tokens",
                        "tokens",
                        f"{title}, stage {s}: transformer block {k} output ({c} ch, 1/{red})",
                        extract=_block_map,
                        rebuild=_block_rebuild,
                        shape_fn=stage_shape,
                    )
                )
                attn = blk.attn
                entries.append(
                    LayerSpec(
                        f"{pre}.block{k}.attention",
                        paths[id(attn)],
                        "softmax(q k^T)",
                        "attention",
                        f"{title}, stage {s}: block {k} attention weights (B, heads, Hq, Wq, Hk, Wk), "
                        f"keys reduced by {getattr(attn, 'sr_ratio', 1)}; recomputed, subsampled above a size limit",
                        extract=None,
                        shape_fn=lambda g, s=s, attn=attn: (
                            1,
                            attn.num_heads,
                            *g["stage_hw"][s],
                            *_attention_keys_hw(attn, g["stage_hw"][s]),
                        ),
                    )
                )
            frm_path = paths[id(bb.FRMs[s - 1])]
            idx = BRANCHES.index(branch)
            entries.append(
                LayerSpec(
                    f"{pre}.out",
                    frm_path,
                    f"input[{idx}]",
                    "map",
                    f"{title}, stage {s}: stage output after {paths[id(norm)].rsplit('.', 1)[-1]} "
                    f"({c} ch, 1/{red}), before FRM",
                    hook="pre",
                    extract=_input_item(idx),
                    shape_fn=stage_shape,
                )
            )
        frm_path = paths[id(bb.FRMs[s - 1])]
        for idx, branch in enumerate(BRANCHES):
            entries.append(
                LayerSpec(
                    f"fusion.stage{s}.frm.{branch}",
                    frm_path,
                    f"output[{idx}]",
                    "map",
                    f"FRM stage {s}: rectified {_BRANCH_TITLE[branch]} stream ({c} ch, 1/{red})",
                    extract=_output_item(idx),
                    shape_fn=stage_shape,
                )
            )
        entries.append(
            LayerSpec(
                f"fusion.stage{s}.ffm",
                paths[id(bb.FFMs[s - 1])],
                "output",
                "map",
                f"FFM stage {s}: fused map read by the decoders ({c} ch, 1/{red})",
                extract=_output,
                shape_fn=stage_shape,
            )
        )

    stage1 = bb.feature_info[0].stage
    for head_name, head in (("anomaly", model.decode_head), ("confidence", model.decode_head_conf)):
        pre = f"decoder.{head_name}"
        for i, proj in enumerate(head.scale_projections(), 1):
            e = proj.proj.out_features
            red = bb.feature_info[i - 1].reduction
            entries.append(
                LayerSpec(
                    f"{pre}.c{i}",
                    paths[id(proj)],
                    "output",
                    "map",
                    f"{head_name} decoder: scale {i} embedding ({e} ch, native 1/{red}, before upsampling)",
                    extract=_output,
                    shape_fn=lambda g, e=e, i=i: (1, e, *g["stage_hw"][bb.feature_info[i - 1].stage]),
                )
            )
        fuse_ch = head.linear_fuse[0].out_channels
        entries.append(
            LayerSpec(
                f"{pre}.fused",
                paths[id(head.linear_fuse)],
                "output",
                "map",
                f"{head_name} decoder: linear_fuse output (conv+BN+ReLU, {fuse_ch} ch, 1/4)",
                extract=_output,
                shape_fn=lambda g, e=fuse_ch: (1, e, *g["stage_hw"][stage1]),
            )
        )
        n_out = head.linear_pred.out_channels
        entries.append(
            LayerSpec(
                f"{pre}.logits",
                paths[id(head.linear_pred)],
                "output",
                "map",
                f"{head_name} decoder: logits at 1/4 resolution ({n_out} ch, before upsampling)",
                extract=_output,
                shape_fn=lambda g, e=n_out: (1, e, *g["stage_hw"][stage1]),
            )
        )
    entries.append(
        LayerSpec(
            "detection.stats",
            paths[id(model.pool)],
            "output",
            "vector",
            "detection head input: " + ", ".join(STATISTIC_NAMES),
            extract=_output,
            shape_fn=lambda g: (1, len(STATISTIC_NAMES)),
        )
    )
    det_out = model.detection[len(model.detection) - 1].out_features
    entries.append(
        LayerSpec(
            "detection.logit",
            paths[id(model.detection)],
            "output",
            "vector",
            "detection logit (sigmoid -> integrity score)",
            extract=_output,
            shape_fn=lambda g: (1, det_out),
        )
    )
    return {e.name: e for e in entries}


_CATALOGS: "weakref.WeakKeyDictionary[nn.Module, tuple[dict[str, LayerSpec], dict[str, weakref.ref]]]" = (
    weakref.WeakKeyDictionary()
)


def catalog_and_modules(model: nn.Module) -> tuple[dict[str, LayerSpec], dict[str, nn.Module]]:
    """The catalog and its hooked modules, cached per model (weakly); rebuilt if a hooked module
    was swapped since."""
    hit = _CATALOGS.get(model)
    if hit is not None:
        try:
            modules = {p: model.get_submodule(p) for p in hit[1]}
            if all(m is hit[1][p]() for p, m in modules.items()):
                return hit[0], modules
        except AttributeError:
            pass
    catalog = layer_catalog(model)
    modules = {e.module: model.get_submodule(e.module) for e in catalog.values()}
    _CATALOGS[model] = (catalog, {p: weakref.ref(m) for p, m in modules.items()})
    return catalog, modules


def resolve_names(catalog: dict[str, LayerSpec] | nn.Module, names: str | Iterable[str]) -> list[str]:
    """Expand glob patterns and check names; unknown -> ``KeyError`` naming the closest entries."""
    if isinstance(catalog, nn.Module):
        catalog = layer_catalog(catalog)
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    for pat in names:
        if any(ch in pat for ch in "*?["):
            hits = fnmatch.filter(catalog, pat)
        else:
            hits = [pat] if pat in catalog else []
        if not hits:
            raise unknown_layer(pat, catalog)
        wanted.update(hits)
    if not wanted:  # capture(model, []) recorded nothing, unsaid ("" is refused as unknown)
        raise KeyError("no layer names given (list_layers(model) shows all names)")
    return [n for n in catalog if n in wanted]


def unknown_layer(name: str, known: Iterable[str]) -> KeyError:
    """The one-line ``KeyError`` for a layer name not in ``known``, naming the closest ones."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return KeyError(f"unknown layer {name!r}{hint} (list_layers(model) shows all names)")


# -- listing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRow:
    """One line of :class:`LayerTable`."""

    name: str
    module: str
    shape: Shape
    description: str


class LayerTable(Sequence[LayerRow]):
    """The catalog as a table (text and HTML); index by position or by name."""

    def __init__(self, rows: Sequence[LayerRow], input_size: tuple[int, int]) -> None:
        self.rows = list(rows)
        self.input_size = tuple(input_size)
        self._by_name = {r.name: r for r in self.rows}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            if key not in self._by_name:
                raise unknown_layer(key, self._by_name)
            return self._by_name[key]
        return self.rows[key]

    def __iter__(self) -> Iterator[LayerRow]:
        return iter(self.rows)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    def filter(self, pattern: str) -> "LayerTable":
        """Rows whose name matches the glob ``pattern``."""
        return LayerTable([r for r in self.rows if fnmatch.fnmatchcase(r.name, pattern)], self.input_size)

    def _cells(self) -> list[tuple[str, str, str, str]]:
        return [(r.name, r.module or "<model>", str(tuple(r.shape)), r.description) for r in self.rows]

    def __str__(self) -> str:
        head = ("name", "module", f"shape @ {self.input_size[0]}x{self.input_size[1]}", "description")
        cells = self._cells()
        widths = [max(len(head[i]), *(len(c[i]) for c in cells)) if cells else len(head[i]) for i in range(3)]
        fmt = lambda c: "  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3]  # noqa: E731
        lines = [fmt(head), "  ".join("-" * w for w in widths) + "  " + "-" * 11]
        lines += [fmt(c) for c in cells]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"LayerTable({len(self)} layers, input {self.input_size[0]}x{self.input_size[1]})\n{self}"

    def _repr_html_(self) -> str:
        esc = html.escape
        head = (
            f"<tr><th>name</th><th>module</th><th>shape @ {self.input_size[0]}x{self.input_size[1]}"
            f"</th><th>description</th></tr>"
        )
        body = "".join(
            f"<tr><td><code>{esc(a)}</code></td><td><code>{esc(b)}</code></td><td>{esc(c)}</td>"
            f"<td style='text-align:left'>{esc(d)}</td></tr>"
            for a, b, c, d in self._cells()
        )
        return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def list_layers(model: nn.Module, input_size: tuple[int, int] = (512, 512)) -> LayerTable:
    """The layer catalog of ``model`` with each tensor's shape for one ``input_size`` (H, W) image
    (a size the model would refuse, below its ``min_side``, is refused here too).

    >>> tl.list_layers(model, input_size=(256, 256))    # name, original module, shape, what it is
    """
    size = tuple(input_size)
    side = getattr(model, "min_side", 1)
    if len(size) != 2 or not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= side for v in size):
        raise ValueError(
            f"input_size is (H, W) with each side at least {side} pixels (the model's smallest), got {input_size!r}"
        )
    size = (int(size[0]), int(size[1]))
    geo = _geometry(model, size)
    rows = [LayerRow(e.name, e.module, tuple(e.shape_fn(geo)), e.description) for e in layer_catalog(model).values()]
    return LayerTable(rows, size)
