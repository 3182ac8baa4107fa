"""Portal forms of the credit policy: a proposal (points scale, cutoffs, a comment) and
its strategy rules as an editable decision table, one form per row (a formset: rows
are added by a submit button and removed by a checkbox, no script needed).

Each row is checked by the service's own parser (``rules_parse``), so its message shows
beside the row it is about; the rest of the rules (cutoffs in order, a change at all,
who may) is the service's when the proposal is made."""

from __future__ import annotations

from typing import cast

from django import forms

from scoring.services.errors import ServiceError
from scoring.services.policy import CUTOFF_FIELDS, RULE_ACTIONS, SCALE_FIELDS, rules_parse

CONDITION_SLOTS = 3  # empty condition cells offered per row (more when a stored rule has more)
MAX_SLOTS = 12
ACTION_LABELS = {"knockout": "Knock-out (decline)", "refer": "Refer to an underwriter", "approve": "Approve"}
REASON_MAX = 2000


class PolicyProposeForm(forms.Form):
    """The scale and cutoffs of a proposal (initially those in force), and why."""

    base_score = forms.FloatField(label="Base score", help_text="points at the base odds")
    base_odds = forms.FloatField(label="Base odds", min_value=1e-9, help_text="good:bad odds at the base score")
    pdo = forms.FloatField(label="Points to double the odds", min_value=1e-9)
    approve_min_score = forms.FloatField(label="Approve at or above", help_text="points")
    decline_below_score = forms.FloatField(label="Decline below", help_text="points; between the two: refer")
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=REASON_MAX, required=False,
        help_text="Why the change is proposed: the approver reads it, the audit log keeps it.",
    )  # fmt: skip
    condition_slots = forms.IntegerField(widget=forms.HiddenInput, min_value=1, max_value=MAX_SLOTS)

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in (*SCALE_FIELDS, *CUTOFF_FIELDS)}


class RuleRowForm(forms.Form):
    """One row of the decision table: the action, its reason code and text, and up to
    ``slots`` conditions (an input and a zen expression each; all must hold)."""

    action = forms.ChoiceField(choices=[(a, ACTION_LABELS[a]) for a in RULE_ACTIONS])
    code = forms.CharField(max_length=40, label="Reason code")
    text = forms.CharField(max_length=500, label="Reason text")

    def __init__(self, *args, inputs: list[str], slots: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.slots = slots
        choices = [("", "—")] + [(name, name) for name in inputs]
        for i in range(slots):
            self.fields[f"input_{i}"] = forms.ChoiceField(choices=choices, required=False, label=f"Input {i + 1}")
            self.fields[f"expression_{i}"] = forms.CharField(
                max_length=200, required=False, label=f"Condition {i + 1}",
                widget=forms.TextInput(attrs={"placeholder": "> 0.45, [18..65], \"rent\""}),
            )  # fmt: skip

    def condition_cells(self):
        """(input field, expression field) per slot, for the template."""
        return [(self[f"input_{i}"], self[f"expression_{i}"]) for i in range(self.slots)]

    def clean(self):
        data = super().clean()
        conditions: dict[str, str] = {}
        for i in range(self.slots):
            name, expression = data.get(f"input_{i}") or "", (data.get(f"expression_{i}") or "").strip()
            if not name and not expression:
                continue
            if not name or not expression:
                raise forms.ValidationError(f"Condition {i + 1} needs both an input and an expression.")
            if name in conditions:
                raise forms.ValidationError(f"{name} is tested twice in this row: combine it in one expression.")
            conditions[name] = expression
        if self.errors:
            return data
        row = {"code": data["code"].strip(), "action": data["action"], "text": data["text"].strip(),
               "conditions": conditions}  # fmt: skip
        try:
            rules_parse([row])  # the service's parser: its message beside this row
        except ServiceError as error:
            raise forms.ValidationError(error.message.replace("Rule 1", "This rule", 1)) from None
        data["rule"] = row
        return data


class BaseRuleFormSet(forms.BaseFormSet):
    def __init__(self, *args, inputs: list[str], slots: int, **kwargs):
        self.inputs, self.slots = inputs, slots
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "inputs": self.inputs, "slots": self.slots}

    @property
    def empty_form(self):
        form = self.form(
            auto_id=self.auto_id, prefix=self.add_prefix("__prefix__"), empty_permitted=True,
            use_required_attribute=False, inputs=self.inputs, slots=self.slots, renderer=self.renderer,
        )  # fmt: skip
        self.add_fields(form, None)
        return form

    def kept_forms(self) -> list[RuleRowForm]:
        """The rows that make the table: neither deleted nor left blank."""
        initial = self.initial_form_count()
        return [f for i, f in enumerate(self.forms)
                if not _deleted(f) and (i < initial or f.has_changed())]  # fmt: skip

    def clean(self):
        if any(self.errors):
            return
        codes: set[str] = set()
        for form in self.kept_forms():
            code = form.cleaned_data["rule"]["code"]
            if code in codes:
                form.add_error("code", f"The code {code} is used by another row.")
            codes.add(code)

    def rules(self) -> list[dict]:
        return [form.cleaned_data["rule"] for form in self.kept_forms()]


def _deleted(form: forms.Form) -> bool:
    return bool(getattr(form, "cleaned_data", {}).get("DELETE"))


RuleFormSet = cast(
    type[BaseRuleFormSet],
    forms.formset_factory(RuleRowForm, formset=BaseRuleFormSet, extra=1, can_delete=True, max_num=200),
)


def rule_initial(rules: list[dict]) -> list[dict]:
    """A stored table as the formset's initial rows."""
    rows = []
    for rule in rules:
        row = {"action": rule.get("action"), "code": rule.get("code"), "text": rule.get("text")}
        for i, (name, expression) in enumerate(sorted((rule.get("conditions") or {}).items())):
            row[f"input_{i}"], row[f"expression_{i}"] = name, expression
        rows.append(row)
    return rows


def slots_for(rules: list[dict]) -> int:
    widest = max((len(rule.get("conditions") or {}) for rule in rules), default=0)
    return min(MAX_SLOTS, max(CONDITION_SLOTS, widest))
