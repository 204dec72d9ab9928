"""The benchmark datasets this project knows by name: DB15K, MKG-W and MKG-Y.

Each dataset is a folder of five files in the split that the IMVIA and MoMoK code train on
(``entity2id.txt``, ``relation2id.txt``, ``train.txt``, ``valid.txt``, ``test.txt``), published in the GitHub
repository ``zjukg/MoMoK`` and pinned here to one commit and to the SHA-256 of every file. Optional side
information (readable entity and relation names, for text features) lives in ``derived/``; it has no public
source of its own and is fetched only from a mirror (see :mod:`imvia_core.data.fetch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imvia_core.errors import InputError

__all__ = [
    "PUBLIC_REPOSITORY",
    "PUBLIC_COMMIT",
    "PUBLIC_URL_PATTERN",
    "SPLIT_FILES",
    "ID_FILES",
    "REQUIRED_FILES",
    "DatasetFile",
    "NameColumns",
    "DatasetInfo",
    "DATASETS",
    "get_dataset",
    "is_known_dataset",
    "known_dataset_names",
]

#: GitHub repository that publishes the three splits.
PUBLIC_REPOSITORY = "zjukg/MoMoK"
#: the commit every checksum below was taken from.
PUBLIC_COMMIT = "99c2df114d48c79708ea0608644b685183d81bd9"
#: raw-file URL of ``<FILE>`` of dataset ``<NAME>`` at that commit.
PUBLIC_URL_PATTERN = f"https://raw.githubusercontent.com/{PUBLIC_REPOSITORY}/{PUBLIC_COMMIT}/datasets/{{name}}/{{file}}"

#: triple files, in the order train, valid, test.
SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")
#: ``name id`` vocabulary files.
ID_FILES = ("entity2id.txt", "relation2id.txt")
#: the files every dataset folder (known or a user's own) must hold.
REQUIRED_FILES = ID_FILES + SPLIT_FILES


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset.

    :param path: path inside the dataset folder, with ``/`` separators (``train.txt``, ``derived/entity_names.tsv``).
    :param sha256: expected SHA-256, lower-case hex.
    :param public: whether the public source publishes it. Files that are not public are optional side
        information, fetched only from a mirror.
    """

    path: str
    sha256: str
    public: bool = True

    @property
    def required(self) -> bool:
        """Whether loading the dataset needs this file."""
        return self.public


@dataclass(frozen=True)
class NameColumns:
    """Where readable names sit in a tab-separated side-information table.

    :param path: table path inside the dataset folder.
    :param key_column: column that repeats the vocabulary name of the row's id (checked against ``*2id.txt``),
        or ``None`` when there is none.
    :param name_columns: columns to take the readable name from, first non-empty wins; when all are empty the
        name is decoded from the vocabulary name (:mod:`imvia_core.data.names`).
    :param description_column: column holding a short description, or ``None``.
    :param split_camel_case: whether the names are camelCase identifiers to be split into words
        (``influencedBy`` -> ``influenced by``).
    """

    path: str
    key_column: str | None
    name_columns: tuple[str, ...]
    description_column: str | None = None
    split_camel_case: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    """A known dataset: its files, checksums, readable-name tables and published counts.

    :param name: canonical name, also the folder name under the data directory.
    :param files: every file with its checksum.
    :param expected_statistics: entities, relations and lines of train, valid and test of the published files.
    :param entity_names: table of readable entity names, if any.
    :param relation_names: table of readable relation names, if any.
    :param description: one line for ``imvia data list``.
    """

    name: str
    files: tuple[DatasetFile, ...]
    expected_statistics: dict[str, int]
    entity_names: NameColumns | None = None
    relation_names: NameColumns | None = None
    description: str = ""
    public_url_pattern: str = field(default=PUBLIC_URL_PATTERN)

    def file(self, path: str) -> DatasetFile:
        """The entry of file ``path``."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def public_url(self, path: str) -> str:
        """Commit-pinned public URL of ``path`` (only meaningful for files with ``public=True``)."""
        return self.public_url_pattern.format(name=self.name, file=path)


def _files(checksums: dict[str, str]) -> tuple[DatasetFile, ...]:
    return tuple(DatasetFile(path, sha, public=not path.startswith("derived/")) for path, sha in checksums.items())


DATASETS: dict[str, DatasetInfo] = {
    "DB15K": DatasetInfo(
        name="DB15K",
        files=_files(
            {
                "entity2id.txt": "e1e257f5850d0a3440a7020dc5c8af77664a60b69fa1869c45c2f20b8024020e",
                "relation2id.txt": "bb002b2069d740a545dfa526c31bcd487aff0a5203db786f278e363c714f24ea",
                "train.txt": "0a9e724d71372f23432e5370e62bd8f94f6d37882be955deca460014d3f6e23c",
                "valid.txt": "73e936ee24e11bd0fd31630a573ea3801da930c7fb6a7397ce0fed47f6f7f133",
                "test.txt": "6c437beaaa65de21f910b447d0c02a5b3aac75ba91de9017eb72cf8495a2260f",
                "derived/entity_names.tsv": "7c27aa0338e9586ef25b75fe538ba2d366927f924ef8c9478a5bbc96bb77cb07",
                "derived/relation_names.tsv": "8a560935c65fb7a25152292d1624440850c57b672c9c8840f54c0a6c0608bf1d",
            }
        ),
        expected_statistics={"entities": 12842, "relations": 279, "train": 79222, "valid": 9904, "test": 9902},
        entity_names=NameColumns("derived/entity_names.tsv", key_column="uri", name_columns=("name",)),
        relation_names=NameColumns(
            "derived/relation_names.tsv", key_column="uri", name_columns=("name",), split_camel_case=True
        ),
        description="DBpedia subset; names are DBpedia resource URIs",
    ),
    "MKG-W": DatasetInfo(
        name="MKG-W",
        files=_files(
            {
                "entity2id.txt": "805e2e9a9a8fff032e2caa17233d8ceaaf2356221c66d6ad3c17d31292d360f5",
                "relation2id.txt": "7035491ec0b2865e1220ec9491aafbcf3ff3d6c797816a0129735e0be9f2ea29",
                "train.txt": "66187e7d882a654915d8048897916ca8c5798e9c7df3a5b8ba8fab5d231cafcd",
                "valid.txt": "6840322036c394af6ab33be5c4f988edafbd48d61fdc9e3b9b485c42e6f5a2da",
                "test.txt": "f0cfb7b5091d8601d0298889533e4f128237a700207b5739d27c0d81152f8245",
                "derived/entity_names.tsv": "e9a0d21927e55e41b74b949ca3925a8652493cc229a4cd409f6f32e09b874598",
                "derived/relation_labels.tsv": "a5a4a953b047461f3957e024f203453526eb40c7765b67cd911e0c538cad0b29",
            }
        ),
        expected_statistics={"entities": 15000, "relations": 169, "train": 34196, "valid": 4276, "test": 4274},
        entity_names=NameColumns(
            "derived/entity_names.tsv",
            key_column="wikidata_uri",
            name_columns=("name_from_dbpedia", "litwd_label"),
            description_column="litwd_description",
        ),
        relation_names=NameColumns("derived/relation_labels.tsv", key_column="uri", name_columns=("label",)),
        description="Wikidata subset; names are Wikidata entity URIs",
    ),
    "MKG-Y": DatasetInfo(
        name="MKG-Y",
        files=_files(
            {
                "entity2id.txt": "ca7c45833c5454545e4ffbeb1e7dde6c5ff2548d6688c91ad44effc9d1095d06",
                "relation2id.txt": "584d45c33a0d1003a28d08ee17507e8da21f3809491f1d511549a0287bdf8dcb",
                "train.txt": "3be3e886268cade513b35429d7aa5e145f51692c2f2bedbd7ff7d60a7a6c263e",
                "valid.txt": "bcc01dbedd4c25f87481ca47b00724a1de1808ec098d80e27fec595c13c8bae4",
                "test.txt": "618b1a1ba2a1880e9cf0f56ae920b589df59a859442d4f1ff32a4e632c25bc4b",
                "derived/entity_names.tsv": "b4802471fa1b312f11557262ef69b8aebdf43f83eacfa132794ab8aa73a5ca23",
            }
        ),
        expected_statistics={"entities": 15000, "relations": 28, "train": 21310, "valid": 2665, "test": 2663},
        entity_names=NameColumns("derived/entity_names.tsv", key_column="yago_name", name_columns=("name",)),
        relation_names=None,
        description="YAGO subset; names are YAGO identifiers",
    ),
}


def known_dataset_names() -> tuple[str, ...]:
    """Canonical names of the known datasets."""
    return tuple(DATASETS)


def _canonical(name: str) -> str | None:
    folded = name.strip().casefold()
    for known in DATASETS:
        if known.casefold() == folded:
            return known
    return None


def is_known_dataset(name: str) -> bool:
    """Whether ``name`` (case-insensitive) names a known dataset."""
    return _canonical(name) is not None


def get_dataset(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (case-insensitive).

    :raises InputError: when ``name`` is not a known dataset.
    """
    canonical = _canonical(name)
    if canonical is None:
        raise InputError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[canonical]
