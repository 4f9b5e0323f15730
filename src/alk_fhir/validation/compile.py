"""StructureDefinitions compiled into check closures, once per URL.

``Compiler.plan(url)`` turns a StructureDefinition's snapshot into a ``ComplexPlan`` (structure.py)
whose fields carry closures for everything the definition says about an element: JSON shape,
cardinality, primitive format, fixed/pattern values, bindings, invariants, reference targets,
slicing, and the definition of the element's type (the type's own StructureDefinition, or the
profile named in ``type.profile``). Plans are cached per URL and built lazily, so only the base
types an instance actually reaches are compiled; our own profiles are compiled eagerly by
``build_validator`` so that a broken profile stops start-up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from alk_fhir.validation import bindings, invariants, patterns, slicing, structure, tree
from alk_fhir.validation.bundle import CONDITIONAL, RESTFUL, BundleIndex
from alk_fhir.validation.defs import FHIR_SD, Definitions, element_type_code, type_url
from alk_fhir.validation.invariants import ValueCheck
from alk_fhir.validation.outcome import Issue
from alk_fhir.validation.primitives import PrimitiveCheck, load_regexes, primitive_checker
from alk_fhir.validation.run import Frame, Run
from alk_fhir.validation.structure import ComplexPlan, Field, walk

_STRUCTURAL = frozenset({"BackboneElement", "Element"})
_LOCAL_REF_TYPES = frozenset({"uri", "url", "canonical"})


class CompileError(ValueError):
    """A definition the validator cannot use; the message names the definition and element."""


class Compiler:
    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self.terms = bindings.Terminologies(defs)
        self.regexes = load_regexes(defs)
        self._prims: dict[str, PrimitiveCheck] = {}
        self._plans: dict[str, ComplexPlan] = {}
        self._building: dict[str, ComplexPlan] = {}
        # Keyed by id() of a profile's node dict; the dict itself is kept in the value so that its id
        # cannot be reused by another profile's tree once the first is garbage-collected.
        self._backbones: dict[tuple[int, str], tuple[object, ComplexPlan]] = {}
        self._depth = 0
        self._lock = threading.RLock()
        self._extensions: dict[str, ComplexPlan | None] = {}
        self.coding_check = bindings.compile_coding_check(self.terms)
        self.element_plan = self._primitive_element_plan()

    # ---- plans -------------------------------------------------------------------------------
    def plan(self, url: str) -> ComplexPlan:
        """The compiled plan of a StructureDefinition. Plans that refer to each other (Reference →
        Identifier → Reference) are built in one locked pass and published together, so another
        thread never sees a half-built plan."""
        bare = url.split("|", 1)[0]
        found = self._plans.get(bare)
        if found is not None:
            return found
        with self._lock:
            found = self._plans.get(bare) or self._building.get(bare)
            if found is not None:
                return found
            sd = self.defs.structure(bare)
            if sd is None:
                raise CompileError(f"unknown StructureDefinition {bare}")
            plan = ComplexPlan(type_path=str(sd.get("type")), url=bare, is_resource=sd.get("kind") == "resource")
            self._building[bare] = plan
            self._depth += 1
            try:
                self._fill(plan, sd)
            except (tree.SnapshotError, slicing.SlicingError, invariants.InvariantError) as exc:
                self._building.clear()
                raise CompileError(str(exc)) from exc
            except (CompileError, RecursionError):  # RecursionError: a first use deep inside nested content
                self._building.clear()
                raise
            finally:
                self._depth -= 1
            if self._depth == 0:
                self._plans.update(self._building)
                self._building.clear()
            return plan

    def compiled_urls(self) -> list[str]:
        return sorted(self._plans)

    def _fill(self, plan: ComplexPlan, sd: dict[str, Any]) -> None:
        root = tree.build(sd)
        url = plan.url
        self._fill_children(plan, root, plan.type_path, url, plan.is_resource)
        keys = {k for k, _ in plan.node_checks}
        for c in root.el.get("constraint", []):
            check = invariants.compile_constraint(c, plan.type_path, f"{url} {root.path}")
            if check is not None and c.get("key") not in keys:
                plan.node_checks.append((str(c.get("key")), check))
                keys.add(str(c.get("key")))
        base_url = FHIR_SD + plan.type_path
        if sd.get("derivation") == "constraint" and base_url != url and self.defs.structure(base_url) is not None:
            for key, check in self.plan(base_url).node_checks:
                if key not in keys and key.startswith("_"):
                    plan.node_checks.append((key, check))
        if url == FHIR_SD + "Extension":
            plan.node_checks.append(("_ext-1", structure.ext1))
        elif url == FHIR_SD + "Reference":
            plan.node_checks.append(("_local-ref", _record_local_reference))
        elif url == FHIR_SD + "Coding":
            plan.node_checks.append(("_code", self.coding_check))

    def _fill_children(self, plan: ComplexPlan, node: tree.Node, type_path: str, url: str, resource_root: bool) -> None:
        plan.primitive_element = self.element_plan
        for child in node.children.values():
            for f, message in self._fields_for(child, url, type_path, resource_root):
                plan.add_field(f)
                if message:
                    plan.required.append(message)

    def _fields_for(self, node: tree.Node, url: str, owner_path: str,
                    resource_root: bool) -> list[tuple[Field, tuple[str, tuple[str, ...], str] | None]]:
        el = node.el
        name = node.name
        choice = name.endswith("[x]")
        base = name[:-3] if choice else name
        minimum = int(el.get("min", 0))
        maximum = _max(el.get("max", "*"))
        base_max = str(el.get("base", {}).get("max", el.get("max", "*")))
        array = base_max != "1" and not choice
        types = el.get("type") or ([{"code": "BackboneElement"}] if node.children else [])
        where = f"{url} {el.get('id') or el.get('path')}"
        fields: list[Field] = []
        for t in types:
            code = element_type_code(t)
            if resource_root and base == "id":
                code = "id"
            cap = code[:1].upper() + code[1:]
            key = base + cap if choice else base
            source = node.slices.get(key, node) if choice else node
            spec = self._value_check(source, code, _type_entry(source, code, t), url, owner_path)
            label = f"{base}.ofType({code})" if choice else base
            fields.append(Field(key, base, label, array, minimum, maximum, spec.primitive, choice, spec.check,
                                prim=spec.prim, after=spec.after, record=spec.record, plan=spec.plan,
                                extra=spec.extra))
        if not fields:
            return []
        out: list[tuple[Field, tuple[str, tuple[str, ...], str] | None]] = [(f, None) for f in fields]
        keys = tuple(k for f in fields for k in ((f.key, "_" + f.key) if f.primitive else (f.key,)))
        if minimum > 0:
            out[0] = (fields[0], (base, keys, f"{base}: minimum required = {minimum}, but only found 0"))
        if node.slices and not choice and el.get("slicing") and array:
            fields[0].slicing = self._slicing(node, fields[0], url, owner_path, resource_root, where)
            for sname, snode in node.slices.items():
                smin = int(snode.el.get("min", 0))
                if smin > 0 and minimum == 0:
                    message = f"slice '{sname}': minimum required = {smin}, but only found 0"
                    out.append((fields[0], (base, keys, message)))
        return out

    def _slicing(self, node: tree.Node, base_field: Field, url: str, owner_path: str, resource_root: bool,
                 where: str) -> structure.ItemsCheck:
        discriminators = node.el.get("slicing", {}).get("discriminator", [])
        slices: list[slicing.Slice] = []
        for sname, snode in node.slices.items():
            sfields = self._fields_for(snode, url, owner_path, resource_root)
            if not sfields:
                continue
            match, key = slicing.compile_matcher(discriminators, snode, f"{where}:{sname}", self.defs.is_type,
                                                 self._conforms_bool, self._slice_member)
            slices.append(slicing.Slice(sname, int(snode.el.get("min", 0)), _max(snode.el.get("max", "*")), match,
                                        sfields[0][0].check, key))
        return slicing.compile_items_check(node, slices, where, self.defs.is_type)

    def _slice_member(self, valueset: str, node: tree.Node) -> Callable[[Any], bool] | None:
        found = self.terms.membership(valueset)
        if found is None:
            return None
        member, codes = found

        def inside(v: Any) -> bool:
            if isinstance(v, str):
                return codes is not None and v in codes
            if isinstance(v, dict) and "coding" in v:
                coding = v["coding"]
                return isinstance(coding, list) and any(
                    member(c.get("system"), c.get("code")) for c in coding if isinstance(c, dict))
            return isinstance(v, dict) and member(v.get("system"), v.get("code"))
        return inside

    # ---- one value of one type -----------------------------------------------------------------
    def _value_check(self, node: tree.Node, code: str, type_entry: dict[str, Any], url: str,
                     owner_path: str) -> Spec:
        el = node.el
        if code in self.defs.primitive_types or code == "xhtml":
            return self._primitive_check(node, code)
        extra = self._element_checks(node, code, type_entry, set())
        if code == "Resource" or code in self.defs.resource_types:
            profiles = tuple(type_entry.get("profile", []))
            contained = node.name == "contained"

            def check_resource(value: Any, path: str, run: Run) -> None:
                self.check_resource(value, path, run, profiles, contained)
                for c in extra:
                    c(value, path, run)
            return Spec(check_resource)
        if code == "Extension" and not node.children:
            profiles = type_entry.get("profile", [])
            if profiles:
                return _complex(self.plan(profiles[0]), extra)
            generic = self._extension_check(node.name == "modifierExtension", owner_path)
            if not extra:
                return Spec(generic)

            def check_ext(value: Any, path: str, run: Run) -> None:
                generic(value, path, run)
                for c in extra:
                    c(value, path, run)
            return Spec(check_ext)
        if node.children:
            memo_key = (id(node.children), code)
            known = self._backbones.get(memo_key)
            if known is not None and known[0] is node.children:
                # a contentReference (Composition.section.section) shares its target's plan
                return _complex(known[1], extra)
            type_path = str(el.get("_typePath") or el.get("path")) if code in _STRUCTURAL else code
            plan = ComplexPlan(type_path=type_path, url=url)
            self._backbones[memo_key] = (node.children, plan)
            self._fill_children(plan, node, type_path, url, False)
            if code not in _STRUCTURAL:
                base = self.plan((type_entry.get("profile") or [type_url(code)])[0])
                names = {c.name.removesuffix("[x]") for c in node.children.values()}
                for f in list(base.fields.values()):
                    if f.name not in names:
                        plan.add_field(f)
                plan.required += [r for r in base.required if r[0] not in names]
                plan.node_checks = list(base.node_checks)
            keys = {k for k, _ in plan.node_checks}
            extra = self._element_checks(node, code, type_entry, keys)
            for c in el.get("constraint", []):
                check = invariants.compile_constraint(c, type_path, f"{url} {el.get('id')}")
                if check is not None and c.get("key") not in keys:
                    plan.node_checks.append((str(c.get("key")), check))
                    keys.add(str(c.get("key")))
            return _complex(plan, extra)
        plan = self.plan((type_entry.get("profile") or [type_url(code)])[0])
        keys = {k for k, _ in plan.node_checks}
        extra = self._element_checks(node, code, type_entry, keys) + self._constraints(node, code, keys, url)
        return _complex(plan, extra)

    def _constraints(self, node: tree.Node, type_path: str, skip: set[str], url: str) -> list[ValueCheck]:
        out: list[ValueCheck] = []
        for c in node.el.get("constraint", []):
            if c.get("key") in skip:
                continue
            check = invariants.compile_constraint(c, type_path, f"{url} {node.el.get('id')}")
            if check is not None:
                out.append(check)
        return out

    def _element_checks(self, node: tree.Node, code: str, type_entry: dict[str, Any],
                        skip: set[str]) -> list[ValueCheck]:
        """fixed/pattern, binding and reference targets of this element (not its invariants)."""
        el = node.el
        out: list[ValueCheck] = []
        found = patterns.fixed_or_pattern(el)
        if found is not None:
            out.append(_fixed_check(*found))
        if el.get("binding"):
            check = bindings.compile_binding(self.terms, el["binding"], code)
            if check is not None:
                out.append(check)
        if code == "Reference":
            out.append(self._reference_check(type_entry))
        return out

    def _primitive_check(self, node: tree.Node, code: str) -> Spec:
        prim = self._prims.get(code)
        if prim is None:
            prim = self._prims[code] = primitive_checker(code, self.regexes)
        extra = self._element_checks(node, code, {}, set()) + self._constraints(node, code, set(), "")
        max_length = node.el.get("maxLength")
        if isinstance(max_length, int):
            extra.append(_max_length_check(max_length))
        after: ValueCheck | None = None
        if len(extra) == 1:
            after = extra[0]
        elif extra:
            def after(value: Any, path: str, run: Run) -> None:
                for c in extra:
                    c(value, path, run)
        record = code in _LOCAL_REF_TYPES
        checker, then = prim, after

        def check(value: Any, path: str, run: Run) -> None:
            problem = checker(value)
            if problem is not None:
                run.error("value", problem, path)
                return
            if record and value[:1] == "#" and run.frame is not None:
                run.frame.local_refs.add(value)
            if then is not None:
                then(value, path, run)
        return Spec(check, True, prim=prim, after=after, record=record)

    def _reference_check(self, type_entry: dict[str, Any]) -> ValueCheck:
        allowed: set[str] | None = set()
        ours: list[str] = []
        for target in type_entry.get("targetProfile", []):
            sd = self.defs.structure(target)
            if sd is None or sd.get("type") == "Resource":
                allowed = None
                continue
            if allowed is not None:
                allowed.add(str(sd.get("type")))
            if self.defs.is_ours(target):
                ours.append(target.split("|", 1)[0])
        if not type_entry.get("targetProfile"):
            allowed = None
        resource_types = self.defs.resource_types
        required = tuple(ours)
        allowed_text = " | ".join(sorted(allowed)) if allowed else ""

        def check(value: Any, path: str, run: Run) -> None:
            ref = value.get("reference") if type(value) is dict else None
            frame = run.frame
            if not isinstance(ref, str) or frame is None:
                return
            if ref[:1] == "#":
                target = invariants.resolve(ref, run)
                if target is not None and allowed is not None and not _is_one_of(target.get("resourceType"), allowed):
                    run.error("invalid", f"reference to a {target.get('resourceType')}; allowed here: {allowed_text}",
                              path)
                return
            m = RESTFUL.match(ref)
            bundles = run.bundles
            bundle: BundleIndex | None = bundles[-1] if bundles else None
            if m is None:
                if bundle is not None and bundle.type == "transaction":
                    conditional = CONDITIONAL.fullmatch(ref)
                    if conditional is not None:  # http.html#trules: resolved by the server when it processes it
                        kind = conditional.group("type")
                        if kind not in resource_types or (allowed is not None and kind not in allowed):
                            run.error("invalid", f"conditional reference '{ref}': {kind} is not allowed here"
                                      + (f" (allowed: {allowed_text})" if allowed_text else ""), path)
                        return
                if ":" not in ref:
                    run.error("invalid", f"'{ref}' is not a valid reference: neither '#id', 'Type/id' nor an absolute"
                              " URL (references.html#literal)", path)
                    return
                literal = None
            else:
                literal = m.group("type")
                if literal not in resource_types:
                    run.error("invalid", f"'{literal}' in reference '{ref}' is not a resource type", path)
                    return
                if allowed is not None and literal not in allowed:
                    run.error("invalid", f"reference to a {literal}; allowed here: {allowed_text}", path)
                    return
            if bundle is None or (literal is not None and not required and not bundle.may_keep_unresolved(False)):
                return  # a Type/id reference the bundle need not hold, to no profile of ours: nothing to look up
            target = bundle.resolve_parsed(ref, m, frame.resource)
            if target is None:
                if not run.quiet_depth:
                    bundle.note_unresolved(ref, path, frame.resource)
                return
            rtype = target.get("resourceType")
            if literal is None and allowed is not None and not _is_one_of(rtype, allowed):
                run.error("invalid", f"reference resolves to a {rtype}; allowed here: {allowed_text}", path)
            elif required and not run.quiet_depth:
                bundle.require(target, required, path)
        return check

    # ---- extensions --------------------------------------------------------------------------
    def extension_plan(self, url: str) -> ComplexPlan | None:
        bare = url.split("|", 1)[0]
        if bare not in self._extensions:
            sd = self.defs.structure(bare)
            plan: ComplexPlan | None = None
            if sd is not None and sd.get("type") == "Extension":
                try:
                    plan = self.plan(bare)
                except CompileError:  # a core extension this compiler cannot read: checked as unknown
                    plan = None
            self._extensions[bare] = plan
        return self._extensions[bare]

    def _extension_check(self, modifier: bool, holder: str) -> ValueCheck:
        def check(value: Any, path: str, run: Run) -> None:
            url = value.get("url") if type(value) is dict else None
            plan = self.extension_plan(url) if isinstance(url, str) else None
            if plan is None:
                walk(value, path, run, self.plan(FHIR_SD + "Extension"))
                if isinstance(url, str):
                    if modifier:
                        run.error("extension", f"unknown modifier extension {url}: the content cannot be safely"
                                  " processed", path)
                    else:
                        run.warning("extension", f"unknown extension {url}: only its structure was checked", path)
                return
            if isinstance(url, str) and not self._context_allows(url, holder):
                run.error("extension", f"extension {url} is not allowed on {holder} (see its context)", path)
            walk(value, path, run, plan)
        return check

    def _context_allows(self, url: str, holder: str) -> bool:
        sd = self.defs.structure(url)
        contexts = (sd or {}).get("context", [])
        if not contexts:
            return True
        for ctx in contexts:
            expr = str(ctx.get("expression", ""))
            if ctx.get("type") == "extension" or expr in ("Element", "Resource", "DomainResource", "Base", holder):
                return True
            if holder == "Element" or expr.endswith(".extension"):
                return True
        return False

    def _primitive_element_plan(self) -> ComplexPlan:
        plan = ComplexPlan(type_path="Element")
        plan.add_field(Field("id", "id", "id", False, 0, 1, True, False, self._plain_primitive("string"),
                             prim=primitive_checker("string", self.regexes)))
        plan.add_field(Field("extension", "extension", "extension", True, 0, -1, False, False,
                             self._extension_check(False, "Element")))
        return plan

    def _plain_primitive(self, code: str) -> ValueCheck:
        prim = primitive_checker(code, self.regexes)

        def check(value: Any, path: str, run: Run) -> None:
            problem = prim(value)
            if problem is not None:
                run.error("value", problem, path)
        return check

    # ---- resources ---------------------------------------------------------------------------
    def check_resource(self, value: Any, path: str, run: Run, profiles: tuple[str, ...] = (),
                       contained: bool = False, only: str | None = None) -> None:
        """Validate a resource against its base definition, the profiles it claims in meta.profile,
        the profiles the containing element demands, or — with ``only`` — exactly one profile."""
        if type(value) is not dict:
            run.error("structure", "expected a resource (a JSON object)", path)
            return
        rtype = value.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            run.error("structure", "resourceType is missing", path)
            return
        if rtype not in self.defs.resource_types:
            run.error("structure", f"unknown resource type '{rtype}'", path)
            return
        urls = [only] if only else self._profiles_for(value, rtype, profiles, path, run)
        outer = run.frame
        if contained and outer is not None:
            run.frame = Frame(value, outer.root, path, outer.contained_ids, outer.local_refs)
        else:
            run.frame = Frame(value, value, path, _contained_ids(value), set())
        index = BundleIndex(value, path) if rtype == "Bundle" else None
        if index is not None:
            run.bundles.append(index)
        try:
            for url in urls:
                walk(value, path, run, self.plan(url))
            if index is not None:
                index.finish(run, self.conformance)
        finally:
            if index is not None:
                run.bundles.pop()
            run.frame = outer

    def _profiles_for(self, value: dict[str, Any], rtype: str, profiles: tuple[str, ...], path: str,
                      run: Run) -> list[str]:
        out: list[str] = []
        meta = value.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) else None
        claimed_list = [p for p in claimed if isinstance(p, str)] if isinstance(claimed, list) else []
        for i, url in [(-1, p) for p in profiles] + list(enumerate(claimed_list)):
            bare = url.split("|", 1)[0]
            sd = self.defs.structure(bare)
            where = f"{path}.meta.profile[{i}]" if i >= 0 else path
            if sd is None:
                run.warning("not-found", f"profile {url} is not known here; {rtype} was checked against the base"
                            " definition only", where)
                continue
            if sd.get("type") != rtype:
                run.error("invalid", f"profile {url} constrains {sd.get('type')}, not {rtype}", where)
                continue
            try:
                self.plan(bare)
            except CompileError as exc:
                run.warning("not-supported", f"profile {url} cannot be checked here ({exc}); {rtype} was checked"
                            " against the other definitions only", where)
                continue
            if bare not in out:
                out.append(bare)
        return out or [FHIR_SD + rtype]

    def conformance(self, resource: dict[str, Any], url: str, run: Run) -> list[Issue]:
        """The errors ``resource`` has against exactly ``url`` (nothing is added to ``run``)."""
        sub = Run()
        sub.bundles = list(run.bundles)
        sub.quiet_depth = 1
        bundle = run.bundle
        path = bundle.entry_path(resource) if bundle is not None else str(resource.get("resourceType", ""))
        if "resourceType" in resource:
            self.check_resource(resource, path, sub, only=url)
        else:
            walk(resource, path, sub, self.plan(url))
        return [i for i in sub.issues if i.severity in ("error", "fatal")]

    def _conforms_bool(self, value: Any, url: str, run: Run) -> bool:
        return isinstance(value, dict) and not self.conformance(value, url, run)


class Spec(NamedTuple):
    """How one value of one type is checked: ``check`` does all of it; the walk uses the parts
    when it has them — ``prim`` (the primitive's format; the location string is only built when
    something is reported or ``after`` needs it), ``record`` (a valid uri/url/canonical starting
    with '#' is remembered for dom-3) and ``after`` (bindings, fixed values, constraints of a valid
    primitive), or ``plan`` (walked directly) followed by ``extra`` on a JSON object."""
    check: ValueCheck
    primitive: bool = False
    prim: PrimitiveCheck | None = None
    after: ValueCheck | None = None
    record: bool = False
    plan: ComplexPlan | None = None
    extra: tuple[ValueCheck, ...] = ()


def _complex(plan: ComplexPlan, extra: list[ValueCheck]) -> Spec:
    if not extra:
        return Spec(lambda value, path, run: walk(value, path, run, plan), plan=plan)
    checks = tuple(extra)

    def check(value: Any, path: str, run: Run) -> None:
        walk(value, path, run, plan)
        if type(value) is dict:
            for c in checks:
                c(value, path, run)
    return Spec(check, plan=plan, extra=checks)


def _is_one_of(rtype: Any, allowed: set[str]) -> bool:
    """A resolved target's resourceType is one of ``allowed`` (an object or array there is none)."""
    return isinstance(rtype, str) and rtype in allowed


def _record_local_reference(value: Any, path: str, run: Run) -> None:
    """Remember '#id' references for dom-3; '#' alone marks a contained resource that refers to its
    container (recorded as '#>id')."""
    ref = value.get("reference") if type(value) is dict else None
    frame = run.frame
    if isinstance(ref, str) and ref[:1] == "#" and frame is not None:
        if ref == "#":
            if frame.resource is not frame.root:
                frame.local_refs.add(f"#>{frame.resource.get('id')}")
        else:
            frame.local_refs.add(ref)


def _contained_ids(resource: dict[str, Any]) -> frozenset[str]:
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return frozenset()
    return frozenset(c["id"] for c in contained if isinstance(c, dict) and isinstance(c.get("id"), str))


def _type_entry(node: tree.Node, code: str, fallback: dict[str, Any]) -> dict[str, Any]:
    for t in node.el.get("type", []):
        if element_type_code(t) == code:
            return dict(t)
    return fallback


def _max(value: Any) -> int:
    return -1 if value in ("*", None) else int(value)


def _fixed_check(kind: str, expected: Any) -> ValueCheck:
    shown = patterns.show(expected)
    if kind == "fixed":
        same = patterns.compile_equal(expected)

        def check_fixed(value: Any, path: str, run: Run) -> None:
            if not same(value):
                run.error("value", f"value must be exactly {shown}", path)
        return check_fixed
    test = patterns.compile_pattern(expected)

    def check_pattern(value: Any, path: str, run: Run) -> None:
        if not test(value):
            run.error("value", f"value does not match the required pattern {shown}", path)
    return check_pattern


def _max_length_check(limit: int) -> ValueCheck:
    def check(value: Any, path: str, run: Run) -> None:
        if isinstance(value, str) and len(value) > limit:
            run.error("too-long", f"value is longer than the maximum of {limit} characters", path)
    return check
