"""Text rendering of a pipeline's dataset-type graph (``pachon pipeline show``)."""

from __future__ import annotations

from pachon.pipe.pipeline import Pipeline, failure_type, metadata_type

__all__ = ["format_pipeline"]


def format_pipeline(pipeline: Pipeline) -> str:
    """Tasks in data-flow order with their inputs and outputs, then every dataset type.

    Returns
    -------
    text
        One block per task, then ``dataset type  {dimensions}  storage class  producer -> consumers``.
    """
    lines = [f"pipeline {pipeline.source}: {len(pipeline)} tasks" +
             (f" — {pipeline.description}" if pipeline.description else "")]
    for tdef in pipeline.ordered():
        lines.append(f"  {tdef.label} ({tdef.class_path}) per {{{', '.join(tdef.dimensions)}}}")
        for name, inp in tdef.task.inputs.items():
            lines.append(f"      in   {name}: {inp.dataset_type}{' [gather]' if inp.multiple else ''}")
        for name, pre in tdef.task.prerequisites.items():
            lines.append(f"      pre  {name}: {pre.dataset_type} (by {pre.lookup})")
        for name, out in tdef.task.outputs.items():
            lines.append(f"      out  {name}: {out.dataset_type}")
    lines.append("dataset types:")
    hidden = {f(lb) for lb in pipeline.task_defs for f in (metadata_type, failure_type)}
    width = max(len(n) for n in pipeline.dataset_types)
    for name, spec in sorted(pipeline.dataset_types.items()):
        if name in hidden:
            continue
        producer = pipeline.producers.get(name, "(input)" if name not in pipeline.prerequisite_types()
                                          else "(prerequisite)")
        consumers = ", ".join(pipeline.consumers.get(name, [])) or "-"
        lines.append(f"  {name:<{width}}  {{{', '.join(spec.dimensions)}}}  {spec.storage_class}  "
                     f"{producer} -> {consumers}")
    lines.append(f"  (+ {len(hidden)} per-task metadata/failure record types)")
    return "\n".join(lines)
