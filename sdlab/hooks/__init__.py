"""The one hooks core: named sites, hooks that observe or replace, one call clock, one guidance plan, undo on exit."""
from .clock import Clock, Row, branch_rows, call_args, check_steps, guidance_on, in_steps, plan_rows
from .core import Block, Hooks, deferred_interrupts, replace_main
from .sites import COMPONENTS, DENOISERS, Site, canonical, components_of, denoiser, site, sites, unwrap

__all__ = ["Block", "COMPONENTS", "DENOISERS", "Clock", "Hooks", "Row", "branch_rows", "call_args", "check_steps", "components_of",
           "deferred_interrupts", "denoiser", "guidance_on", "in_steps", "plan_rows", "replace_main", "site", "canonical", "Site", "sites", "unwrap"]
