"""Datasets: the knowledge-graph container and its index of known triples, the benchmarks, fetching, parsing."""

from imvia_core.data.fetch import MIRROR_ENV, dataset_status, fetch_dataset, sha256_of
from imvia_core.data.filtering import FilterIndex, check_triples
from imvia_core.data.graph import KnowledgeGraph, add_reciprocals
from imvia_core.data.loading import load_folder, load_graph, load_known_dataset
from imvia_core.data.names import readable_entity_name, readable_relation_name, split_camel_case, uri_local_name
from imvia_core.data.parsing import NameTable, TripleFile, read_id_map, read_name_table, read_triples
from imvia_core.data.registry import DATASETS, DatasetFile, DatasetInfo, get_dataset, is_known_dataset

__all__ = [
    "FilterIndex",
    "check_triples",
    "KnowledgeGraph",
    "add_reciprocals",
    "DATASETS",
    "DatasetFile",
    "DatasetInfo",
    "get_dataset",
    "is_known_dataset",
    "MIRROR_ENV",
    "fetch_dataset",
    "dataset_status",
    "sha256_of",
    "load_graph",
    "load_folder",
    "load_known_dataset",
    "read_id_map",
    "read_triples",
    "read_name_table",
    "TripleFile",
    "NameTable",
    "readable_entity_name",
    "readable_relation_name",
    "split_camel_case",
    "uri_local_name",
]
