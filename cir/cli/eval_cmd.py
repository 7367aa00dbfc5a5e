"""``cir eval ...``: one sub-command per benchmark format; they share the options of :class:`CommonOptions`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from cir.backbones.spec import DEFAULT_BACKBONE
from cir.cli.common import BACKBONE_HELP, device_option, progress_option, quiet_option, resolve_device, show_progress, strategy_help
from cir.cli.rerank_options import RerankChoice, with_rerank_options

# options every evaluator takes (typer needs them in each signature; the objects are shared)
BACKBONE = typer.Option(DEFAULT_BACKBONE, "--backbone", help=BACKBONE_HELP)
OUT = typer.Option(None, "--out", help="write the result JSON here (metrics per strategy, options, hashes, time)")
SAVE_RANKINGS = typer.Option(None, "--save-rankings", help="write {strategy: {query id: [top-50 gallery ids]}} here")
COMPARE = typer.Option(False, "--compare", help="print strategies side by side (and evaluate all of them unless --strategy)")
DEVICE = device_option()
BATCH_SIZE = typer.Option(64, "--batch-size", help="images per encoding batch")
WORKERS = typer.Option(4, "--workers", help="threads that read, decode and preprocess images")
QUIET = quiet_option()
PROGRESS = progress_option()
COMPOSER = typer.Option(None, "--composer", help="pic2word/combiner: trained weights (a .safetensors file or a directory "
                        "holding pic2word.safetensors / combiner.safetensors); default: the backbone's own (cir:demo ships them)")


def strategy_option():
    """--strategy, its help listing the registered strategies (built when the commands are registered)."""
    return typer.Option(None, "--strategy", help=strategy_help(
        "composition strategy, or several comma-separated; default sum (text for text2image), every training-free "
        "strategy with --compare. "))


@dataclass
class CommonOptions:
    backbone: str  # model spec
    strategies: tuple[str, ...]  # strategy names, in table order
    out: Path | None  # result JSON
    save_rankings: Path | None  # rankings JSON
    compare: bool  # strategies side by side
    device: str  # torch device
    batch_size: int  # images per encoding batch
    workers: int  # image loading threads
    quiet: bool  # no progress output
    progress: bool | None  # progress bars: True, False, None = only on a terminal
    composer: Path | None = None  # learned strategies' weights (None: the backbone's own)
    rerank: "RerankChoice | None" = None  # the re-rank stage (None: none)

    def as_dict(self) -> dict:
        return {**(self.rerank.as_dict() if self.rerank is not None else {}),
            "backbone": self.backbone, "strategy": list(self.strategies), "out": _s(self.out),
            "save_rankings": _s(self.save_rankings), "compare": self.compare, "device": self.device,
            "batch_size": self.batch_size, "workers": self.workers, "composer": _s(self.composer),
        }


def _s(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def parse_strategies(values: list[str] | None, compare: bool, text_only: bool) -> tuple[str, ...]:
    """``--strategy a,b --strategy c`` -> (a, b, c); the default depends on the task and on --compare."""
    from cir.compose import strategy_names

    names = [n.strip() for v in (values or []) for n in v.split(",") if n.strip()]
    if names:
        return tuple(dict.fromkeys(names))
    if text_only:
        return ("text",)
    # --compare alone: the training-free strategies (learned ones need weights: ask for them with --strategy)
    return strategy_names(learned=False) if compare else ("sum",)


def common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, text_only=False,
           composer=None, progress=None, rerank=None) -> CommonOptions:
    return CommonOptions(
        backbone, parse_strategies(strategy, compare, text_only), out, save_rankings, compare, resolve_device(device),
        batch_size, workers, quiet, progress, composer, rerank,
    )


def execute(benchmark: str, tasks: list, labels: list[str] | None, opts: CommonOptions, options: dict):
    """Encode, compose, rank, measure; print the table; write --out and --save-rankings. Returns (report, runs)."""
    from cir.backbones import load_backbone
    from cir.encode.cache import EmbeddingCache
    from cir.eval.report import build_report, combined_rankings, compare_table, markdown_table, write_json
    from cir.eval.runner import RunConfig, build_strategies, run_task

    started = time.perf_counter()
    for task in tasks:
        build_strategies(opts.strategies, task, opts.composer)  # refuse bad names before loading a model
    log = (lambda msg: None) if opts.quiet else (lambda msg: typer.echo(msg, err=True))
    backbone = load_backbone(opts.backbone, device=opts.device)
    cache = EmbeddingCache(backbone)
    choice = opts.rerank
    reranking = {} if choice is None or choice.name is None else {
        "rerank": choice.name, "rerank_k": choice.k, "rerank_params": dict(choice.params), "rerank_weight": choice.weight,
        "rerank_fusion": choice.fusion, "reranker_weights": str(choice.weights_dir) if choice.weights_dir else None}
    config = RunConfig(strategies=opts.strategies, batch_size=opts.batch_size, workers=opts.workers, progress=show_progress(opts.progress, opts.quiet),
                       composer=str(opts.composer) if opts.composer is not None else None, **reranking)
    runs = [run_task(task, backbone, config, cache, log) for task in tasks]
    report = build_report(
        benchmark, runs, labels, backbone, cache.fingerprint, {**options, **opts.as_dict()}, time.perf_counter() - started
    )
    typer.echo(compare_table(report) if opts.compare else markdown_table(report))
    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)
    if opts.out is not None:
        write_json(opts.out, report)
        log(f"wrote {opts.out}")
    if opts.save_rankings is not None:
        write_json(opts.save_rankings, combined_rankings(runs, labels))
        log(f"wrote {opts.save_rankings}")
    return report, runs


def register(app: typer.Typer) -> None:
    ev = typer.Typer(help="Evaluate retrieval: CIRR, FashionIQ, CIRCO, triplet CSVs and text->image CSVs.",
                     epilog="Example: cir eval cirr --root data/cirr --split val --compare", no_args_is_help=True)
    STRATEGY = strategy_option()  # noqa: N806 - shared by every evaluator's signature, like the module's options
    app.add_typer(ev, name="eval")

    @ev.command("cirr", epilog="Example: cir eval cirr --root data/cirr --split val --strategy sum,arithmetic --compare")
    @with_rerank_options
    def cirr(
        root: Path = typer.Option(..., "--root", help="CIRR root holding captions/ and image_splits/"),
        split: str = typer.Option("val", "--split", help="val or test1 (test1 writes the two server files)"),
        submission_dir: Path = typer.Option(Path("submissions"), "--submission-dir", help="where test1 submission files go"),
        backbone: str = BACKBONE, strategy: Optional[List[str]] = STRATEGY, out: Optional[Path] = OUT,
        save_rankings: Optional[Path] = SAVE_RANKINGS, compare: bool = COMPARE, device: str = DEVICE,
        batch_size: int = BATCH_SIZE, workers: int = WORKERS, quiet: bool = QUIET, progress: Optional[bool] = PROGRESS,
        composer: Optional[Path] = COMPOSER, rerank_choice=None,
    ) -> None:
        """CIRR rc2: Recall@{1,5,10,50} and Recall_subset@{1,2,3}; reference excluded from its own ranking."""
        from cir.datasets.cirr import load_cirr, submissions
        from cir.eval.report import write_json

        opts = common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, composer=composer, progress=progress, rerank=rerank_choice)
        task = load_cirr(root, split)
        _, runs = execute("cirr", [task], None, opts, {"root": str(root), "split": split})
        if split == "test1":
            for name, srun in runs[0].strategies.items():
                for metric, data in submissions(task, srun.rankings, srun.subset_rankings or {}).items():
                    path = submission_dir / f"cirr_test1_{name}_{metric}.json"
                    write_json(path, data, compact=True)
                    typer.echo(f"wrote CIRR test1 submission {path}", err=True)

    @ev.command("fashioniq", epilog="Example: cir eval fashioniq --root data/fashioniq --category dress --strategy sum")
    @with_rerank_options
    def fashioniq(
        root: Path = typer.Option(..., "--root", help="FashionIQ root holding captions/, image_splits/ and images/"),
        category: str = typer.Option("all", "--category", help="dress, shirt, toptee or all (per category and averaged)"),
        caption_join: str = typer.Option("and", "--caption-join", help='and ("c1 and c2", default), reversed ("c2 and c1") or both (average of both orders)'),
        exclude_reference: bool = typer.Option(False, "--exclude-reference/--keep-reference", help="drop the reference from its own ranking (default: keep, as CLIP4Cir/SEARLE)"),
        backbone: str = BACKBONE, strategy: Optional[List[str]] = STRATEGY, out: Optional[Path] = OUT,
        save_rankings: Optional[Path] = SAVE_RANKINGS, compare: bool = COMPARE, device: str = DEVICE,
        batch_size: int = BATCH_SIZE, workers: int = WORKERS, quiet: bool = QUIET, progress: Optional[bool] = PROGRESS,
        composer: Optional[Path] = COMPOSER, rerank_choice=None,
    ) -> None:
        """FashionIQ val: R@10 and R@50 per category and their average."""
        from cir.datasets.common import choose
        from cir.datasets.fashioniq import CATEGORIES, load_fashioniq

        opts = common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, composer=composer, progress=progress, rerank=rerank_choice)
        choose(category, CATEGORIES + ("all",), "FashionIQ category")
        categories = list(CATEGORIES) if category == "all" else [category]
        tasks = [load_fashioniq(root, c, "val", caption_join, exclude_reference) for c in categories]
        options = {"root": str(root), "category": category, "caption_join": caption_join, "exclude_reference": exclude_reference}
        execute("fashioniq", tasks, categories if category == "all" else None, opts, options)

    @ev.command("circo", epilog="Example: cir eval circo --root data/circo --split val --strategy sum,pic2word")
    @with_rerank_options
    def circo(
        root: Path = typer.Option(..., "--root", help="CIRCO root holding annotations/ and COCO2017_unlabeled/"),
        split: str = typer.Option("val", "--split", help="val or test (test writes the server file)"),
        exclude_reference: bool = typer.Option(False, "--exclude-reference/--keep-reference", help="drop the reference from its own ranking (default: keep, as the CIRCO/SEARLE code)"),
        submission_dir: Path = typer.Option(Path("submissions"), "--submission-dir", help="where the test submission file goes"),
        backbone: str = BACKBONE, strategy: Optional[List[str]] = STRATEGY, out: Optional[Path] = OUT,
        save_rankings: Optional[Path] = SAVE_RANKINGS, compare: bool = COMPARE, device: str = DEVICE,
        batch_size: int = BATCH_SIZE, workers: int = WORKERS, quiet: bool = QUIET, progress: Optional[bool] = PROGRESS,
        composer: Optional[Path] = COMPOSER, rerank_choice=None,
    ) -> None:
        """CIRCO: mAP@{5,10,25,50} and Recall@{5,10,25,50} on val; the submission file on test."""
        from cir.datasets.circo import load_circo, submission
        from cir.eval.report import write_json

        opts = common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, composer=composer, progress=progress, rerank=rerank_choice)
        task = load_circo(root, split, exclude_reference)
        _, runs = execute("circo", [task], None, opts, {"root": str(root), "split": split, "exclude_reference": exclude_reference})
        if split == "test":
            for name, srun in runs[0].strategies.items():
                path = submission_dir / f"circo_test_{name}.json"
                write_json(path, submission(task, srun.rankings), compact=True)
                typer.echo(f"wrote CIRCO test submission {path}", err=True)

    @ev.command("triplets", epilog="Example: cir eval triplets --csv triplets.csv --images photos/ --compare")
    @with_rerank_options
    def triplets(
        csv: Path = typer.Option(..., "--csv", help="CSV with columns query_image, query_text, target_image"),
        images: Path = typer.Option(..., "--images", help="folder the CSV's image names are relative to"),
        database: Optional[Path] = typer.Option(None, "--database", help="rank every image in this folder (default: the unique targets)"),
        exclude_reference: bool = typer.Option(True, "--exclude-reference/--keep-reference", help="drop a reference found in the database from its own ranking (default: drop)"),
        kind_column: Optional[str] = typer.Option(None, "--kind-column", help="a CSV column naming each query's kind "
                                                  "(the triplet-test export's: kind): metrics per kind and their mean"),
        backbone: str = BACKBONE, strategy: Optional[List[str]] = STRATEGY, out: Optional[Path] = OUT,
        save_rankings: Optional[Path] = SAVE_RANKINGS, compare: bool = COMPARE, device: str = DEVICE,
        batch_size: int = BATCH_SIZE, workers: int = WORKERS, quiet: bool = QUIET, progress: Optional[bool] = PROGRESS,
        composer: Optional[Path] = COMPOSER, rerank_choice=None,
    ) -> None:
        """A triplet CSV (reference image, modification text, target image): top-1 accuracy and Recall@{1,5,10}."""
        from cir.datasets.csv_triplets import load_triplets, load_triplets_by_kind

        opts = common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, composer=composer, progress=progress, rerank=rerank_choice)
        options = {"csv": str(csv), "images": str(images), "database": _s(database), "exclude_reference": exclude_reference}
        if kind_column:
            tasks, labels = load_triplets_by_kind(csv, images, database, exclude_reference, kind_column)
            execute("triplets", tasks, labels, opts, {**options, "kind_column": kind_column})
            return
        task = load_triplets(csv, images, database, exclude_reference)
        execute("triplets", [task], None, opts, options)

    @ev.command("text2image", epilog="Example: cir eval text2image --csv pairs.csv --images photos/ --text-column caption --image-column file")
    @with_rerank_options
    def text2image(
        csv: Path = typer.Option(..., "--csv", help="CSV with a text column and an image column"),
        images: Path = typer.Option(..., "--images", help="folder of the CSV's images"),
        text_column: str = typer.Option(..., "--text-column", help="column holding the query text"),
        image_column: str = typer.Option(..., "--image-column", help="column holding the image file name or id"),
        database: Optional[Path] = typer.Option(None, "--database", help="rank every image in this folder (default: the CSV's images)"),
        backbone: str = BACKBONE, strategy: Optional[List[str]] = STRATEGY, out: Optional[Path] = OUT,
        save_rankings: Optional[Path] = SAVE_RANKINGS, compare: bool = COMPARE, device: str = DEVICE,
        batch_size: int = BATCH_SIZE, workers: int = WORKERS, quiet: bool = QUIET, progress: Optional[bool] = PROGRESS,
        composer: Optional[Path] = COMPOSER, rerank_choice=None,
    ) -> None:
        """Text -> image retrieval from a CSV of (text, image) pairs: Hits@{1,5,10,25,50} and MRR@50."""
        from cir.datasets.text2image import load_text2image

        opts = common(backbone, strategy, out, save_rankings, compare, device, batch_size, workers, quiet, text_only=True, composer=composer, progress=progress, rerank=rerank_choice)
        task = load_text2image(csv, images, text_column, image_column, database)
        options = {"csv": str(csv), "images": str(images), "text_column": text_column, "image_column": image_column,
                   "database": _s(database)}
        execute("text2image", [task], None, opts, options)

    @ev.command("tower", epilog="Example: cir eval tower --root runs/triplet-test/shifted --backbone cir:demo")
    def tower(
        root: Path = typer.Option(..., "--root", help="a triplet-test export (cir scenes export --format triplet-test)"),
        backbone: str = BACKBONE, device: str = DEVICE, out: Optional[Path] = OUT,
    ) -> None:
        """The image tower on a triplet-test export: exact object-set recognition of the references and the gallery
        (presence head) and caption->image R@1 over the gallery."""
        import json

        from cir.backbones import load_backbone
        from cir.eval.report import write_json
        from cir.eval.tower_bars import measure_export

        model = load_backbone(backbone, device=resolve_device(device))
        result = measure_export(model, root)
        typer.echo(json.dumps(result, indent=2))
        if out is not None:
            write_json(out, {"backbone": backbone, "root": str(root), "describe": model.describe(), "metrics": result})

    @ev.command("backbone", epilog="Example: cir eval backbone --backbone cir:demo")
    def backbone_bars(
        backbone: str = BACKBONE,
        seed: int = typer.Option(0, "--seed", help="seed of the held-out scenes"),
        multi: int = typer.Option(2000, "--multi", help="scenes in the multi-object gallery"),
        out: Optional[Path] = OUT,
    ) -> None:
        """The demo backbone's bars on held-out scenes: single-object text->image R@1 over all 319 objects, and
        caption->image R@1 over a gallery of 1-3-object scenes."""
        from cir.backbones import load_backbone
        from cir.eval.backbone_bars import measure_bars
        from cir.eval.report import write_json

        bars = measure_bars(load_backbone(backbone), seed=seed, n_multi=multi)
        typer.echo(f"single-object text->image R@1 over {bars['n_single']} objects: {100 * bars['single_r1']:.1f}")
        typer.echo(f"multi-object caption->image R@1 over {bars['n_multi']} scenes: {100 * bars['multi_r1']:.1f}")
        if out is not None:
            write_json(out, {"backbone": backbone, "seed": seed, **bars})
