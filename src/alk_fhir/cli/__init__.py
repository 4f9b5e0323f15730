"""``alk-fhir``: one command line for every face. Each subcommand lives in its own module."""

from __future__ import annotations

import click

from alk_fhir import __version__
from alk_fhir.cli import (
    apply_cmd,
    fhirpath_cmd,
    overview_cmd,
    package_cmd,
    register_cmd,
    report_cmd,
    serve_cmd,
    store_cmd,
    validate_cmd,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="alk-fhir")
def main() -> None:
    """FHIR R4 tooling and CDS Hooks service for the NALK guideline on persistent ALK."""


main.add_command(serve_cmd.serve)
main.add_command(package_cmd.package)
main.add_command(package_cmd.build_package)
main.add_command(package_cmd.core_package)
main.add_command(apply_cmd.apply)
main.add_command(validate_cmd.validate)
main.add_command(overview_cmd.overview)
main.add_command(report_cmd.report)
main.add_command(register_cmd.register)
main.add_command(fhirpath_cmd.fhirpath)
main.add_command(store_cmd.store)
