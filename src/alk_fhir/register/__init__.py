"""The case register (issue 13; Profielschets: "casusregister hardnekkige ALK"): a pseudonymised,
k-anonymised extract of the stored case-overview documents for research.

    key = register_key()                               # ALK_FHIR_REGISTER_KEY, refused when unset
    result = export_register(versions, pkg, key, Path("out"), fmt="parquet", k=5)

One row per patient per document version (see ``fields.FIELDS``, the data dictionary), k-anonymous
per patient (``anonymity``), written into a fresh directory, files 0600 (``export``). Imports
``context``, ``criteria`` and ``knowledge`` to read the documents as the engine does; no face.
"""

from alk_fhir.register.anonymity import DEFAULT_K, Suppression, k_anonymise, patient_classes
from alk_fhir.register.export import FORMATS, ExportResult, build_rows, export_register
from alk_fhir.register.extract import Skipped, Version, register_row
from alk_fhir.register.fields import FIELDS, QUASI_IDENTIFIERS, dictionary_json, dictionary_markdown
from alk_fhir.register.pseudonym import KEY_VARIABLE, RegisterKeyError, key_problem, new_key, pseudonym, register_key

__all__ = [
    "DEFAULT_K",
    "FIELDS",
    "FORMATS",
    "KEY_VARIABLE",
    "QUASI_IDENTIFIERS",
    "ExportResult",
    "RegisterKeyError",
    "Skipped",
    "Suppression",
    "Version",
    "build_rows",
    "dictionary_json",
    "dictionary_markdown",
    "export_register",
    "k_anonymise",
    "key_problem",
    "new_key",
    "patient_classes",
    "pseudonym",
    "register_key",
    "register_row",
]
