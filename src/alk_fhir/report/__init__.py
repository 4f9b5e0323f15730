"""The feedback report for the guideline working group (issue 13, the learning loop).

    report = build_report(store.shown_counts(since=…), store.feedback_facts(since=…), labels, since=…)
    render_html(report) / to_csv(report) / to_json(report)

Per month, guideline section and plan action: how often the advice was shown, accepted and
overridden, with the override reasons (our codes only). Reads the store's learning-loop tables;
``labels`` (Dutch and English titles) come from whoever composes it (``api``, ``cli``), so this
module imports no face.
"""

from alk_fhir.report.feedback import FeedbackReport, Labels, Tally, build_report
from alk_fhir.report.html import render_html
from alk_fhir.report.tables import to_csv, to_dict, to_json

FORMATS = ("html", "csv", "json")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "json": "application/json"}


def render(report: FeedbackReport, fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "html":
        return render_html(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report)
    raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "MEDIA_TYPES", "FeedbackReport", "Labels", "Tally", "build_report", "render",
           "render_html", "to_csv", "to_dict", "to_json"]
