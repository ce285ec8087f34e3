"""The kitchen's vocabulary: object kinds, predicate phrases, action templates.

Everything here is part of the observable interface of Robotouille (docs/kitchen.md
sections 1-3) and must match the original text exactly.
"""

from __future__ import annotations

STATION_KINDS = ("table", "stove", "board", "fryer", "sink")
ITEM_KINDS = ("bottombun", "topbun", "bread", "lettuce", "onion", "tomato", "patty", "chicken", "cheese", "potato")
CONTAINER_KINDS = ("pot", "bowl")
MEAL_KINDS = ("water",)
PLAYER_KINDS = ("robot",)

# Flags a layout may give an item at the start (docs/kitchen.md 1.3).
ITEM_FLAGS = ("iscuttable", "iscookable", "isfryable", "isfryableifcut", "iscooked")

# "is a ..." phrases of the identity predicates (docs/kitchen.md 2, rows 1-16, 25-27).
KIND_PHRASE = {
    "table": "a table", "stove": "a stove", "board": "a cutting board", "fryer": "a fryer", "sink": "a sink",
    "robot": "a robot",
    "topbun": "a top bun", "bottombun": "a bottom bun", "bread": "a bread slice", "lettuce": "a head of lettuce",
    "onion": "an onion", "tomato": "a tomato", "patty": "a hamburger patty", "chicken": "a chicken breast",
    "cheese": "a cheese slice", "potato": "a potato",
    "pot": "a pot", "bowl": "a bowl", "water": "water",
}
# Identity predicates print in this order (predicate numbers 1-16): stations, robot, items.
ITEM_KIND_ORDER = ("topbun", "bottombun", "bread", "lettuce", "onion", "tomato", "patty", "chicken", "cheese", "potato")

# Dynamic/static item flag bits, in predicate-print order (rows 17-24).
FRYABLE, FRYABLEIFCUT, FRIED, COOKABLE, COOKING, COOKED, CUTTABLE, CUT = (1 << k for k in range(8))
FLAG_BITS = {
    "isfryable": FRYABLE, "isfryableifcut": FRYABLEIFCUT, "isfried": FRIED, "iscookable": COOKABLE,
    "iscooking": COOKING, "iscooked": COOKED, "iscuttable": CUTTABLE, "iscut": CUT,
}
FLAG_PHRASE = (
    (FRYABLE, "can be fried in a fryer"),
    (FRYABLEIFCUT, "can be fried in a fryer after being cut"),
    (FRIED, "is fried"),
    (COOKABLE, "can be cooked on a stove"),
    (COOKING, "is cooking"),
    (COOKED, "is cooked"),
    (CUTTABLE, "can be cut on a cutting board"),
    (CUT, "is cut"),
)

# Action schemas in valid-action order (docs/kitchen.md 3).
MOVE, PICK_ITEM, PLACE_ITEM, PICK_CONTAINER, PLACE_CONTAINER, COOK, CUT_ACTION, FRY, FILL_POT, BOIL, ADD_TO, \
    FILL_BOWL, STACK, UNSTACK, WAIT = range(15)
ACTION_TEMPLATES = (
    "Move {p} from {s} to {s2}",
    "Pick up {i} from {s} using {p}",
    "Place {i} on {s} using {p}",
    "Pick up {c} from {s} using {p}",
    "Place {c} on {s} using {p}",
    "Cook {i} on {s} using {p}",
    "Cut {i} on {s} using {p}",
    "Fry {i} on {s} using {p}",
    "Fill {c} with water from {s} using {p}",
    "Boil {c}'s contents on {s} using {p}",
    "Add {i} into {c} using {p}",
    "Fill {c} with {c2}'s contents using {p}",
    "Stack {i} on top of {i2} using {p}",
    "Unstack {i} from {i2} using {p}",
    "Do nothing",
)
WAIT_TEXT = "Do nothing"

# Timing constants the original engine uses regardless of task-file settings (docs/kitchen.md 3.2, 10.1).
TIMER_TICKS = 4
CUTS_NEEDED = 3
