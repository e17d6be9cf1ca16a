"""The one hooks core: named sites, hooks that observe or replace, one call clock, one guidance plan, undo on exit."""
from .clock import Clock, Row, branch_rows, call_args, guidance_on, plan_rows
from .core import Block, Hooks, deferred_interrupts, replace_main
from .sites import COMPONENTS, DENOISERS, components_of, denoiser, site, unwrap

__all__ = ["Block", "COMPONENTS", "DENOISERS", "Clock", "Hooks", "Row", "branch_rows", "call_args", "components_of",
           "deferred_interrupts", "denoiser", "guidance_on", "plan_rows", "replace_main", "site", "unwrap"]
