"""The feedback report as JSON (one object) and as CSV (one line per month, section and action).

Column and member names are English; every title comes in Dutch and English. Override reasons get
one CSV column each (``reason:<code>``), in the order of the package's override-reasons group,
then ``reason:other`` and ``reason:none``. A count of 1 to 4 is the string ``"<5"`` (``feedback.cell``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from alk_fhir.report.feedback import FeedbackReport, Key, Tally, cell

FORMAT_VERSION = 1


def _counts(tally: Tally, report: FeedbackReport) -> dict[str, Any]:
    return {
        "shown": cell(tally.shown),
        "accepted": cell(tally.accepted),
        "overridden": cell(tally.overridden),
        "overrideReasons": {code: cell(tally.reasons[code]) for code in report.labels.reason_codes()
                            if tally.reasons[code]},
        "overrideComments": cell(tally.comments),
    }


def _row(key: Key, tally: Tally, report: FeedbackReport) -> dict[str, Any]:
    month, section, action = key
    return {"month": month, "section": section, "sectionTitle": dict(report.labels.section(section)),
            "action": action, "actionTitle": dict(report.labels.action(action)), **_counts(tally, report)}


def to_dict(report: FeedbackReport) -> dict[str, Any]:
    labels = report.labels
    return {
        "report": "alk-fhir CDS feedback",
        "formatVersion": FORMAT_VERSION,
        "since": report.since,
        "months": report.months,
        "overrideReasons": [{"code": code, **labels.reason(code)} for code in labels.reason_codes()],
        "total": _counts(report.total(), report),
        "perMonth": [{"month": month, **_counts(tally, report)} for month, tally in report.per_month()],
        "perSection": [{"section": section, "sectionTitle": dict(labels.section(section)), **_counts(tally, report)}
                       for section, tally in report.per_section()],
        "rows": [_row(key, tally, report) for key, tally in report.rows()],
    }


def to_json(report: FeedbackReport) -> str:
    return json.dumps(to_dict(report), ensure_ascii=False, indent=2) + "\n"


def to_csv(report: FeedbackReport) -> str:
    labels = report.labels
    codes = labels.reason_codes()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", "section", "section_nl", "section_en", "action", "action_nl", "action_en",
                     "shown", "accepted", "overridden", *(f"reason:{c}" for c in codes), "override_comments"])
    for (month, section, action), tally in report.rows():
        s, a = labels.section(section), labels.action(action)
        writer.writerow([month, section or "", s["nl"], s["en"], action or "", a["nl"], a["en"],
                         cell(tally.shown), cell(tally.accepted), cell(tally.overridden),
                         *(cell(tally.reasons[c]) for c in codes), cell(tally.comments)])
    return out.getvalue()
