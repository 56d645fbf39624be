"""The six MICON-Bench tasks: each is a registered Task class bound to the YAML card beside this file
(``class: micon_tasks.tasks:ObjectComposition`` in object_composition.yaml), which holds its data source,
checkpoint set and scoring. The task index (micon_tasks/index.py) reads the cards; the ``micon`` group
(micon.yaml) lists the tasks in the paper's order. Behaviour a card cannot state goes in these classes.
"""

from __future__ import annotations

from micon_tasks.task import MiconTask

__all__ = [
    "ObjectComposition",
    "SpatialComposition",
    "AttributeDisentanglement",
    "ComponentTransfer",
    "FgBgComposition",
    "StoryGeneration",
]


class ObjectComposition(MiconTask):
    """Compose objects from 2-3 references into one coherent scene."""


class SpatialComposition(MiconTask):
    """Place subjects under explicit positions, relations and orientations."""


class AttributeDisentanglement(MiconTask):
    """Subject, style and background from three references, each kept in its role."""


class ComponentTransfer(MiconTask):
    """Move one named part of a reference onto another reference's subject."""


class FgBgComposition(MiconTask):
    """Put a foreground subject into a background scene as one photograph."""


class StoryGeneration(MiconTask):
    """Draw the next frame of a sequence; scored with the answer set as a hybrid (PROTOCOL 4)."""
