"""One source of truth: every default of the command line, of the interfaces, of the
numeric core and of the workflow factories is the settings' (glm_workflows.settings)."""

import inspect
import subprocess
import sys
from dataclasses import fields

import pytest
from nipype.interfaces.base import isdefined

from glm_workflows import interfaces
from glm_workflows.cli.parser import build_parser
from glm_workflows.core.choices import DRIFT_MODELS, HEIGHT_CONTROLS, NOISE_MODELS
from glm_workflows.core.design import HRF_MODELS
from glm_workflows.settings import (
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    PLUGINS,
    SEED_CONTRASTS,
    ExecutionSettings,
    InferenceSettings,
    ModelSettings,
    default_first,
)

MODEL_FIELDS = [f.name for f in fields(ModelSettings)]
INFERENCE_FIELDS = [f.name for f in fields(InferenceSettings)]


def _default(name):
    """A model or inference setting's default."""
    return getattr(DEFAULT_MODEL if name in MODEL_FIELDS else DEFAULT_INFERENCE, name)


#: Per setting, the (interface, input) traits that take it.
INTERFACE_TRAITS = {
    "noise_model": [("FitGLM", "noise_model")],
    "hrf_model": [("DesignMatrix", "hrf_model")],
    "drift_model": [("DesignMatrix", "drift_model")],
    "high_pass": [("DesignMatrix", "high_pass")],
    "drift_order": [("DesignMatrix", "drift_order")],
    "slice_time_ref": [("DesignMatrix", "slice_time_ref")],
    "run_node": [("DesignMatrix", "run_node")],
    "smoothing_fwhm": [("FitGLM", "smoothing_fwhm")],
    "save_residuals": [("FitGLM", "save_residuals")],
    "height_control": [("ThresholdMap", "height_control")],
    "alpha": [("ThresholdMap", "alpha")],
    "threshold": [("ThresholdMap", "threshold")],
    "cluster_threshold": [("ThresholdMap", "cluster_threshold")],
    "two_sided": [("ThresholdMap", "two_sided"), ("ClusterTable", "two_sided")],
    "table_min_cluster_size": [("ClusterTable", "min_cluster_size")],
}

#: Flag inputs left undefined unless asked for (so a node without them hashes as before
#: they existed): undefined is their setting's default, off.
OFF_WHEN_UNDEFINED = {("FitGLM", "save_residuals")}

#: Core keywords that take a setting under another name.
CORE_ALIASES = {"table_min_cluster_size": "min_cluster_size"}
SETTING_KEYWORDS = {CORE_ALIASES.get(name, name) for name in MODEL_FIELDS + INFERENCE_FIELDS}

#: Core parameters named like a setting that keep a default, and why (each is not the
#: setting, or is another library's API mirrored as it is).
NOT_SETTINGS = {
    "glm_workflows.core.stats_model.NodeSpec.__init__": {
        "high_pass": "a model file's Run node value, None when the file gives none"},
    **{f"glm_workflows.core.{name}": {
        "two_sided": "nilearn's non_parametric_inference(two_sided_test=False)",
        "threshold": "the cluster-forming p (not the z threshold): None, no cluster "
                     "inference, as nilearn's"}
       for name in ("permutations.permutation_chunk",
                    "permutation_results.combine_permutations")},
}


def _core_callables():
    """Every function and method defined in a module of glm_workflows.core."""
    import importlib
    import pkgutil

    import glm_workflows.core as core

    for info in pkgutil.iter_modules(core.__path__):
        module = importlib.import_module(f"{core.__name__}.{info.name}")
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if inspect.isfunction(member):
                        yield f"{module.__name__}.{name}.{attribute}", member


def test_core_has_no_default_for_a_setting():
    """The numeric core takes model and inference settings as required arguments: their
    defaults live in glm_workflows.settings only (callers pass them)."""
    defaults = [f"{where}({parameter.name}={parameter.default!r})"
                for where, function in _core_callables()
                for parameter in inspect.signature(function).parameters.values()
                if parameter.name in SETTING_KEYWORDS
                and parameter.default is not inspect.Parameter.empty
                and parameter.name not in NOT_SETTINGS.get(where, {})]
    assert not defaults, "defaults outside glm_workflows.settings: " + ", ".join(defaults)


def test_every_setting_reaches_the_core():
    """The rule above bites: each setting is a parameter of some core function."""
    taken = {parameter for _, function in _core_callables()
             for parameter in inspect.signature(function).parameters}
    assert SETTING_KEYWORDS <= taken, SETTING_KEYWORDS - taken


def test_every_setting_is_covered():
    """The table above names every field of ModelSettings and InferenceSettings."""
    assert sorted(INTERFACE_TRAITS) == sorted(MODEL_FIELDS + INFERENCE_FIELDS)


@pytest.mark.parametrize("name", MODEL_FIELDS + INFERENCE_FIELDS)
def test_cli_and_interface_defaults_are_the_settings(name):
    """A Python user building a node by hand gets the CLI's numbers."""
    expected = _default(name)
    args = build_parser().parse_args([])
    cli_default = getattr(args, name)
    assert cli_default == expected and type(cli_default) is type(expected)
    for interface, trait in INTERFACE_TRAITS[name]:
        value = getattr(getattr(interfaces, interface)().inputs, trait)
        if (interface, trait) in OFF_WHEN_UNDEFINED:
            assert expected is False and not isdefined(value), f"{interface}.inputs.{trait}"
            continue
        if expected is None:  # a None setting is an undefined input (not hashed: the
            assert not isdefined(value), f"{interface}.inputs.{trait}"  # cache keeps)
            continue
        assert value == expected, f"{interface}.inputs.{trait}"


def test_cli_execution_defaults_are_the_settings():
    args = build_parser().parse_args([])
    for field in fields(ExecutionSettings):
        assert getattr(args, field.name) == getattr(ExecutionSettings(), field.name)


def test_choices_are_defined_once():
    """The CLI's choices and the interfaces' Enum values are the settings' tuples."""
    choices = {action.dest: action.choices for action in build_parser()._actions}
    assert tuple(choices["noise_model"]) == NOISE_MODELS
    assert tuple(choices["drift_model"]) == DRIFT_MODELS
    assert tuple(choices["height_control"]) == HEIGHT_CONTROLS
    plugin = next(a for a in build_parser()._actions if a.dest == "plugin")
    assert choices["plugin"] is None and ", ".join(PLUGINS) in plugin.help  # any Nipype's
    for interface, trait, values in [("FitGLM", "noise_model", NOISE_MODELS),
                                     ("DesignMatrix", "drift_model", DRIFT_MODELS),
                                     ("DesignMatrix", "hrf_model", HRF_MODELS),
                                     ("ThresholdMap", "height_control", HEIGHT_CONTROLS)]:
        handler = getattr(interfaces, interface)().inputs.trait(trait).handler
        assert sorted(handler.values) == sorted(values), f"{interface}.inputs.{trait}"


def test_help_prints_the_settings_defaults():
    """Each help text that names a default takes it from the parser (%(default)s), so
    ``--help`` prints the settings' value; the one/two-sided flags follow the settings."""
    for action in build_parser()._actions:
        if action.dest == "two_sided":
            marked = action.help.endswith("(default)")
            assert marked == (action.const == DEFAULT_INFERENCE.two_sided), action.help
        elif action.help and "(default" in action.help and action.default is not None:
            assert "%(default)s" in action.help, action.help
    text = build_parser().format_help()
    assert f"(default {DEFAULT_MODEL.high_pass})" in text
    assert f"(default {DEFAULT_INFERENCE.height_control})" in text


def test_factories_default_to_the_settings_objects():
    from glm_workflows.workflows.first_level import init_first_level_wf
    from glm_workflows.workflows.fixed_effects import init_fixed_effects_wf
    from glm_workflows.workflows.inference import init_inference_wf
    from glm_workflows.workflows.study import init_glm_wf

    def defaults(function):
        return {k: p.default for k, p in inspect.signature(function).parameters.items()}

    for function in (init_first_level_wf, init_glm_wf):
        assert defaults(function)["model"] is DEFAULT_MODEL
        assert defaults(function)["inference"] is DEFAULT_INFERENCE
        assert defaults(function)["contrasts"] is SEED_CONTRASTS
    for function in (init_inference_wf, init_fixed_effects_wf):
        assert defaults(function)["inference"] is DEFAULT_INFERENCE
    assert DEFAULT_MODEL == ModelSettings() and DEFAULT_INFERENCE == InferenceSettings()


def test_default_first():
    """traits.Enum defaults to its first value: default_first puts the default there."""
    assert default_first("ols", ("ar1", "ols")) == ("ols", "ar1")
    assert default_first("ar1", NOISE_MODELS) == NOISE_MODELS
    with pytest.raises(ValueError, match="not one of"):
        default_first("ar2", NOISE_MODELS)


def test_core_and_settings_import_no_nipype():
    """The numeric core imports the settings, and still no Nipype."""
    code = ("import sys, glm_workflows.settings, glm_workflows.core.design, "
            "glm_workflows.core.glm, glm_workflows.core.inference; "
            "sys.exit(any(m.split('.')[0] == 'nipype' for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
