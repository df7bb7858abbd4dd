"""The words of each claim against what runs: an architecture, a learning rate, a batch size,
a step budget, jump steps, or a baseline's jump ratio or noise named in a claim's text
(``claim`` and ``settings``) must be those of a workload the claim measures at the full size,
with the claim's methods. A number of steps written "about N steps" is a result the paper
reports, not a budget."""

import re

import pytest
import torch

from plp_bench import models
from plp_bench.claims.registry import load_claims, plan_claim
from plp_bench.data import SHAPES

CLAIMS = load_claims()


def planned(claim):
    return plan_claim(claim, "full", check_data=False)


def text(claim):
    return " ".join([claim.claim, claim.settings or ""])


def number(word: str) -> int:
    return int(word.replace(",", ""))


def built(workload):
    input_shape, classes = SHAPES[workload.dataset]
    return models.create(workload.model, num_classes=classes, input_shape=input_shape,
                         **workload.model_options)


def layer_chain(model) -> list[int]:
    """Widths through the fully connected layers: in of the first, then each out."""
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return [linear[0].in_features, *[m.out_features for m in linear]] if linear else []


def contains(sequence: list[int], part: list[int]) -> bool:
    return any(sequence[i:i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def jump_lists(words: str) -> list[list[int]]:
    """The step lists after "jumps at": "jumps at 3000, 4000 and 5000, 20,000 steps" names
    [3000, 4000, 5000] (a number written with a thousands comma ends the list)."""
    lists = []
    for tail in re.split(r"jumps at (?:steps )?", words)[1:]:
        steps, position = [], 0
        pattern = re.compile(r"(?:,? and |, )?(\d+)(?!\d|,\d{3})")
        while (match := pattern.match(tail, position)) is not None:
            steps.append(int(match.group(1)))
            position = match.end()
        lists.append(steps)
    return lists


def rates(plan) -> set[float]:
    rates = set()
    for method in (plan.treatment, plan.control):
        options = plan.workload.optimizers.get(method.optimizer, {})
        if "lr" in options:
            rates.add(float(options["lr"]))
    return rates


def wrapper_options(plans, wrapper: str, option: str) -> set[float]:
    """The values of ``option`` of every ``wrapper`` the plans' methods carry."""
    return {float(w.options[option]) for p in plans for m in (p.treatment, p.control)
            for w in m.wrappers if w.name == wrapper and option in w.options}


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_what_a_claim_names_is_what_its_workloads_run(claim):
    words = text(claim)
    # the paper's own measurements where the claim has them; a claim of proxies names theirs
    plans = [p for p in planned(claim) if not p.measurement.proxy] or planned(claim)
    workloads = [p.workload for p in plans]
    for found in re.findall(r"\bbatch (\d+)", words):
        assert number(found) in {w.batch_size for w in workloads}, f"batch {found}"
    # "about N steps" is a result the paper reports, not a budget
    for found in re.findall(r"(?<!about )\b(\d{1,3}(?:,\d{3})+|\d{4,}) (?:SGD )?steps\b", words):
        assert number(found) in {w.steps for w in workloads}, f"{found} steps"
    for steps in jump_lists(words):
        assert steps in [list(w.jump_steps) for w in workloads], f"jumps at {steps}"
    for found in re.findall(r"learning rate (\d(?:\.\d+)?e-\d+)(?! \.\.)", words):
        assert any(float(found) in rates(p) for p in plans), f"learning rate {found}"
    for low, high in re.findall(r"cyclic learning rate (\S+) \.\. (\S+?),", words):
        assert any(float(high) in rates(p) and p.workload.lr_schedule.name == "cyclic"
                   and p.workload.lr_schedule.options.get("low") == float(low) / float(high)
                   for p in plans), f"cyclic learning rate {low} .. {high}"
    for found in re.findall(r"fully connected (\d+(?:-\d+)+)", words):
        widths = [int(x) for x in found.split("-")]
        assert any(contains(layer_chain(built(w)), widths) for w in workloads), found
    for count, filters in re.findall(r"(\d+) convolutions of ([\d, and]+?) filters", words):
        wanted = [int(x) for x in re.findall(r"\d+", filters)]
        convs = [[m.out_channels for m in built(w).modules() if isinstance(m, torch.nn.Conv2d)]
                 for w in workloads]
        assert [*wanted] in convs and int(count) == len(wanted), f"convolutions {filters}"
    for found in re.findall(r"jump ratios? ((?:[\d.]+(?:, | and )?)+)", words):
        named = {float(x) for x in re.findall(r"\d+(?:\.\d+)?", found)}
        assert named <= wrapper_options(plans, "fit-jumps", "ratio"), f"jump ratio {found}"
    for found in re.findall(r"noise[^.]*?standard deviations? ((?:[\d.]+\d(?:, | and )?)+)",
                            words):
        named = {float(x) for x in re.findall(r"\d+(?:\.\d+)?", found)}
        assert named <= wrapper_options(plans, "noise-jumps", "std"), f"deviation {found}"
    for found in re.findall(r"\((\d+) hidden units\)", words):
        sizes = set()
        for w in workloads:
            for m in built(w).modules():
                if isinstance(m, torch.nn.LSTM):
                    sizes.add(m.hidden_size)
                elif isinstance(m, torch.nn.Linear):
                    sizes.add(m.out_features)
        assert number(found) in sizes, f"{found} hidden units"


def test_the_text_check_catches_a_wrong_number():
    """A claim whose words no longer match its workload fails the check above."""
    claim = next(c for c in CLAIMS if c.name == "introspection-mnist3")
    wrong = type(claim)(**{**claim.__dict__, "settings": claim.settings.replace("784-256-256-10",
                                                                              "784-800-800-10")})
    with pytest.raises(AssertionError, match="784-800-800-10"):
        test_what_a_claim_names_is_what_its_workloads_run(wrong)
    wrong = type(claim)(**{**claim.__dict__, "claim": claim.claim + " (batch 64)"})
    with pytest.raises(AssertionError, match="batch 64"):
        test_what_a_claim_names_is_what_its_workloads_run(wrong)


def test_the_text_check_catches_a_baseline_setting_that_does_not_run():
    claim = next(c for c in CLAIMS if c.name == "introspection-vs-quadratic")
    wrong = type(claim)(**{**claim.__dict__, "claim": claim.claim.replace("1.4", "1.5")})
    with pytest.raises(AssertionError, match="jump ratio"):
        test_what_a_claim_names_is_what_its_workloads_run(wrong)
    claim = next(c for c in CLAIMS if c.name == "introspection-vs-noise")
    wrong = type(claim)(**{**claim.__dict__, "claim": claim.claim.replace("0.0001", "0.01")})
    with pytest.raises(AssertionError, match="deviation"):
        test_what_a_claim_names_is_what_its_workloads_run(wrong)


def test_jump_lists_end_where_the_list_does():
    assert jump_lists("jumps at 3000, 4000 and 5000, 20,000 steps") == [[3000, 4000, 5000]]
    assert jump_lists("Weight jumps at steps 2500 and 3000 raise it") == [[2500, 3000]]
