"""Commands beside Lightning's ``fit``/``validate``/``test`` (kept light: no torch import)."""

#: name -> module whose ``main(argv)`` runs it
COMMANDS = {
    "play": "rl_lightning.runs.play",
    "runs": "rl_lightning.runs.registry",
    "plot": "rl_lightning.runs.plot",
    "sweep": "rl_lightning.runs.sweep",
    "reproduce": "rl_lightning.runs.reproduce",
}
