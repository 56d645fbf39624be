"""The six MICON-Bench tasks. Each is a registered Task class whose YAML card (beside this file) holds
its data source, checkpoint set and scoring; the ``micon`` group (micon.yaml) lists them in the paper's order.
"""

from __future__ import annotations

from pathlib import Path

from micon_tasks.task import MiconTask, declare, register_yaml_group

__all__ = [
    "ObjectComposition",
    "SpatialComposition",
    "AttributeDisentanglement",
    "ComponentTransfer",
    "FgBgComposition",
    "StoryGeneration",
]


@declare("object_composition.yaml")
class ObjectComposition(MiconTask):
    """Compose objects from 2-3 references into one coherent scene."""


@declare("spatial_composition.yaml")
class SpatialComposition(MiconTask):
    """Place subjects under explicit positions, relations and orientations."""


@declare("attribute_disentanglement.yaml")
class AttributeDisentanglement(MiconTask):
    """Subject, style and background from three references, each kept in its role."""


@declare("component_transfer.yaml")
class ComponentTransfer(MiconTask):
    """Move one named part of a reference onto another reference's subject."""


@declare("fgbg_composition.yaml")
class FgBgComposition(MiconTask):
    """Put a foreground subject into a background scene as one photograph."""


@declare("story_generation.yaml")
class StoryGeneration(MiconTask):
    """Draw the next frame of a sequence; scored with the answer set as a hybrid (PROTOCOL 4)."""


register_yaml_group(Path(__file__).with_name("micon.yaml"))
