"""Manifests: the three kinds (Dataset, LoraModel, Generation) as pydantic documents, and their loader.

The contract: `load_manifests` reads the manifest files and the images they name, never the network or the state, and
returns a validated ManifestSet or raises one ManifestError listing every problem at once, each located as
file:line:col. `document_schema` is the JSON Schema of a document (`reconciler schema`).

    words.py        pure: how messages write a value, a field path and a did-you-mean
    schema.py       pure: the documents, Novita's enums and ranges, document_schema
    messages.py     pure: a pydantic error in the project's own words, located at a key or a value
    loaded.py       pure: the frozen types the loader returns
    drafts.py       a document being loaded (Draft) and the problems found so far (Collector)
    matrixcheck.py  a document's matrix: its axes and values checked, expanded into members
    crosscheck.py   across documents: duplicate names, references, a training dataset's images and captions
    loader.py       load_manifests: files → documents → checks within and across them → ManifestSet

Imports go one way: words ← schema ← messages ← drafts ← matrixcheck, crosscheck ← loader, and loaded ← loader.
"""

from __future__ import annotations

from reconciler.load.loaded import Dataset, Generation, ImageFile, LoraModel, ManifestSet, Source
from reconciler.load.loader import load_manifests
from reconciler.load.schema import (
    KINDS,
    MAX_TRAINING_IMAGES,
    NAME_PATTERN,
    BaseModelName,
    Component,
    ComponentName,
    DatasetDocument,
    DatasetSpec,
    Embedding,
    ExpertSetting,
    GenerationDocument,
    GenerationSpec,
    HiresFix,
    ImageEntry,
    ImageItem,
    LoraModelDocument,
    LoraModelSpec,
    LoraRef,
    LrScheduler,
    Metadata,
    Refiner,
    Rule,
    SamplerName,
    Upscaler,
    document_schema,
)
from reconciler.load.words import describe

__all__ = [
    "KINDS",
    "MAX_TRAINING_IMAGES",
    "NAME_PATTERN",
    "BaseModelName",
    "Component",
    "ComponentName",
    "Dataset",
    "DatasetDocument",
    "DatasetSpec",
    "Embedding",
    "ExpertSetting",
    "Generation",
    "GenerationDocument",
    "GenerationSpec",
    "HiresFix",
    "ImageEntry",
    "ImageFile",
    "ImageItem",
    "LoraModel",
    "LoraModelDocument",
    "LoraModelSpec",
    "LoraRef",
    "LrScheduler",
    "ManifestSet",
    "Metadata",
    "Refiner",
    "Rule",
    "SamplerName",
    "Source",
    "Upscaler",
    "describe",
    "document_schema",
    "load_manifests",
]
