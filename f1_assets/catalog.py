"""The asset catalog, applied to every asset in one place (`definitions.py`), so that the asset
modules state only what an asset computes:

- owner: `team:f1-data` (one team runs the whole platform);
- tags: `layer` (raw | fastf1 | features | ml) and, for ingestion, `source` (jolpica | fastf1), from
  the asset's group;
- `code_version`: derived, never written by hand (a hand-kept version is forgotten): a hash of the
  source of the module that defines the asset and of every project module it uses from
  `f1_assets.assets`, `.transforms`, `.tables` and `.schemas`, followed through those modules. Any
  change there gives a new version, so the UI flags every asset whose code changed; the price is
  that all assets of one module change version together, even for a comment;
- kinds: the storage the asset uses AS CONFIGURED when the Definitions load: the warehouse engine
  (`duckdb` | `postgres`, from F1_WAREHOUSE_URL) for assets of kind `sql`, the blob store
  (`local` | `gcs`, from F1_BLOB_URL) for assets of kind `parquet`. A storage kind written in a
  decorator counts as `sql` or `parquet` and is replaced, so the DuckDB default never shows `postgres`;
- code references: file and line of each asset's function, linked to the repository at the running
  commit when both are known (the distribution's `Repository` project URL, `audit.git_commit_sha()`),
  local paths otherwise (a wheel, a checkout without a hosted remote).

Code references are a beta API in Dagster 1.13; this module is the one place that uses it, so its
BetaWarning is accepted here (and turned into an error anywhere else in the project by pytest).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import dagster as dg

import f1_assets
from f1_assets import audit, settings

OWNER = "team:f1-data"
DISTRIBUTION = "f1-assets"
# group -> (layer, source); every asset group must be listed here
LAYERS: dict[str, tuple[str, str | None]] = {
    "ingest_jolpica": ("raw", "jolpica"),
    "ingest_fastf1": ("fastf1", "fastf1"),
    "features": ("features", None),
    "ml": ("ml", None),
}
# the project modules whose source makes an asset's code version
VERSIONED_PACKAGES = ("f1_assets.assets", "f1_assets.transforms", "f1_assets.tables", "f1_assets.schemas")
WAREHOUSE_KINDS = ("duckdb", "postgres")
BLOB_KINDS = ("local", "gcs")


@dataclass(frozen=True)
class Storage:
    """The configured storage, as kinds: `warehouse` duckdb | postgres, `blob` local | gcs (None: a URL
    that is neither, reported by the resource's `get()` when it is used)."""

    warehouse: str | None
    blob: str | None


def storage_of(warehouse_url: str, blob_url: str) -> Storage:
    """The storage kinds of two URLs (pure: the URLs never leave this function)."""
    if warehouse_url.startswith("duckdb://"):
        engine = "duckdb"
    elif warehouse_url.startswith(("postgresql://", "postgres://")):
        engine = "postgres"
    else:
        engine = None
    return Storage(warehouse=engine, blob="gcs" if blob_url.startswith("gs://") else "local")


def configured_storage() -> Storage:
    """The storage the environment configures now (F1_WAREHOUSE_URL, F1_BLOB_URL, else F1_HOME)."""
    return storage_of(settings.warehouse_url(), settings.blob_url())


def _used_modules(module: ModuleType, packages: Sequence[str]) -> set[ModuleType]:
    """The modules of `packages` that `module` refers to by name: imported modules, and the modules
    that define the functions, classes and objects it imported."""
    used = set()
    for value in vars(module).values():
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and any(name == p or name.startswith(p + ".") for p in packages):
            imported = value if inspect.ismodule(value) else inspect.getmodule(value)
            if imported is not None and imported is not module:
                used.add(imported)
    return used


def versioned_modules(module: ModuleType, packages: Sequence[str] = VERSIONED_PACKAGES) -> list[ModuleType]:
    """`module` and the modules of `packages` it uses, directly or through one another, by name."""
    seen, todo = {module}, [module]
    while todo:
        for used in _used_modules(todo.pop(), packages) - seen:
            seen.add(used)
            todo.append(used)
    return sorted(seen, key=lambda m: m.__name__)


def code_version(module: ModuleType, packages: Sequence[str] = VERSIONED_PACKAGES) -> str:
    """16 hex digits of the SHA-256 of the source of `versioned_modules(module, packages)`."""
    digest = hashlib.sha256()
    for used in versioned_modules(module, packages):
        try:
            source = inspect.getsource(used)
        except (OSError, TypeError) as exc:
            raise RuntimeError(f"code_version: no source for {used.__name__} ({exc}); the package must ship "
                               ".py files") from None
        digest.update(used.__name__.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def describe(spec: dg.AssetSpec, version: str, storage: Storage) -> dg.AssetSpec:
    """`spec` with the catalog's owner, tags, code version and storage kinds."""
    if spec.group_name not in LAYERS:
        raise ValueError(f"asset {spec.key.to_user_string()}: group {spec.group_name!r} has no layer in "
                         f"f1_assets.catalog.LAYERS ({', '.join(LAYERS)})")
    layer, source = LAYERS[spec.group_name]
    declared = set(spec.kinds)
    kinds = declared - {*WAREHOUSE_KINDS, *BLOB_KINDS}
    if declared & {"sql", *WAREHOUSE_KINDS} and storage.warehouse:
        kinds.add(storage.warehouse)
    if declared & {"parquet", *BLOB_KINDS} and storage.blob:
        kinds.add(storage.blob)
    tags = {"layer": layer, **({"source": source} if source else {})}
    return spec.replace_attributes(
        owners=[OWNER],
        tags={k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")} | tags,
        kinds=kinds,
        code_version=version,
    )


def repository_url() -> str | None:
    """The `Repository` project URL of the installed distribution (pyproject `[project.urls]`), if any."""
    try:
        urls = importlib.metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [url.strip() for label, _, url in (u.partition(",") for u in urls) if label.strip() == "Repository"]
    return found[0] if found else None


def with_code_references(assets: Sequence[dg.AssetsDefinition], git_url: str | None,
                         commit: str | None) -> list[dg.AssetsDefinition]:
    """`assets` with references to their source: URLs at `commit` of `git_url` when both are given
    and the host is GitHub or GitLab (the hosts Dagster links to), local file paths otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # deliberate: see the module docstring
        referenced = dg.with_source_code_references(assets)
        if git_url and commit and any(host in git_url for host in ("github", "gitlab")):
            anchor = Path(f1_assets.__file__)
            referenced = dg.link_code_references_to_git(
                referenced, git_url=git_url.rstrip("/"), git_branch=commit,
                file_path_mapping=dg.AnchorBasedFilePathMapping(
                    local_file_anchor=anchor, file_anchor_path_in_repository=f"f1_assets/{anchor.name}"),
            )
    return list(referenced)


def catalogued(modules: Iterable[ModuleType], storage: Storage) -> list[dg.AssetsDefinition]:
    """The `ASSETS` of every module, described for the catalog and referenced to their source."""
    described = [
        asset.map_asset_specs(functools.partial(describe, version=code_version(module), storage=storage))
        for module in modules
        for asset in module.ASSETS
    ]
    return with_code_references(described, repository_url(), audit.git_commit_sha())
