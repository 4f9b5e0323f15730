"""``PlanDefinition/$apply`` over HTTP (FHIR R4 plandefinition-operation-apply, with the CPG
``data`` parameter): the patient's resources come in the request; nothing is read from a store.

Parameters: ``subject`` (string, "Patient/id"), ``data`` (Bundle), ``practitioner`` (string),
``planDefinition``/``url`` (canonical, type level only), and ``today`` (date) to pin the date the
rules see. The answer is the operation's single ``return`` CarePlan, with the RequestGroup, the
assessment Observation and the proposed requests contained.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request

from alk_fhir.api.outcome import FHIRError, FHIRResponse, fhir_response, read_json_body
from alk_fhir.apply import Engine, NoSubject, pinned_day, run
from alk_fhir.apply.engine import DEFAULT_PLAN
from alk_fhir.fhir import run_body_work

router = APIRouter(tags=["apply"])
_ALLOWED = {"subject", "data", "practitioner", "planDefinition", "url", "today", "encounter", "organization",
            "userType", "userLanguage", "userTaskContext", "setting", "settingContext", "useServerData"}


def _param_value(param: dict[str, Any]) -> Any:
    if "resource" in param:
        return param["resource"]
    values = [v for k, v in param.items() if k.startswith("value")]
    return values[0] if values else None


def parse_parameters(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FHIRError(400, "invalid", "the body must be a Parameters resource")
    out: dict[str, Any] = {}
    for i, param in enumerate(body.get("parameter", []) or []):
        name = param.get("name") if isinstance(param, dict) else None
        if not isinstance(name, str):
            raise FHIRError(400, "invalid", "parameter without a name", f"Parameters.parameter[{i}]")
        if name not in _ALLOWED:
            raise FHIRError(400, "not-supported", f"unknown parameter {name!r}", f"Parameters.parameter[{i}]")
        if name in out:
            raise FHIRError(400, "invalid", f"parameter {name!r} given twice", f"Parameters.parameter[{i}]")
        out[name] = _param_value(param)
    return out


def _subject_id(subject: Any) -> str | None:
    if subject is None:
        return None
    if not isinstance(subject, str) or not subject.startswith("Patient/") or len(subject) <= len("Patient/"):
        raise FHIRError(400, "invalid", "subject must be a string 'Patient/<id>'",
                        "Parameters.parameter.where(name='subject')")
    return subject.split("/", 1)[1]


def _today(value: Any) -> date:
    if value is None:
        return date.today()
    try:
        return pinned_day(str(value))
    except ValueError as exc:
        raise FHIRError(400, "invalid", f"today must be a date (YYYY-MM-DD) in a supported range, not {value!r}: "
                        f"{exc}", "Parameters.parameter.where(name='today')") from exc


def apply_operation(request: Request, plan_url: str, params: dict[str, Any]) -> FHIRResponse:
    engine: Engine = request.app.state.engine
    data = params.get("data")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FHIRError(400, "required", "parameter 'data' (a Bundle with the patient's resources) is required: "
                        "this server holds no patient records")
    practitioner = params.get("practitioner")
    if practitioner is not None and not isinstance(practitioner, str):
        raise FHIRError(400, "invalid", "practitioner must be a string reference")
    try:
        result = run(engine, data, _today(params.get("today")), plan=plan_url,
                     practitioner={"reference": practitioner} if practitioner else None,
                     patient_id=_subject_id(params.get("subject")))
    except KeyError as exc:
        raise FHIRError(404, "not-found", str(exc.args[0])) from exc
    except NoSubject as exc:
        raise FHIRError(400, "required", f"{exc}: send parameter 'subject' or a Patient in 'data'",
                        "Parameters.parameter.where(name='subject')") from exc
    return fhir_response(result.as_careplan())


@router.post("/fhir/PlanDefinition/$apply", response_class=FHIRResponse)
async def apply_type(request: Request) -> FHIRResponse:
    params = parse_parameters(await read_json_body(request))
    plan = params.get("planDefinition") or params.get("url") or DEFAULT_PLAN
    return await run_body_work(request, apply_operation, request, str(plan), params)


@router.post("/fhir/PlanDefinition/{plan_id}/$apply", response_class=FHIRResponse)
async def apply_instance(request: Request, plan_id: str) -> FHIRResponse:
    params = parse_parameters(await read_json_body(request))
    plan = request.app.state.package.get("PlanDefinition", plan_id)
    if plan is None:
        raise FHIRError(404, "not-found", f"PlanDefinition/{plan_id} not found")
    return await run_body_work(request, apply_operation, request, plan["url"], params)
