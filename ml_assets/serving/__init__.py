"""Online serving: the champion behind a FastAPI service that assembles point-in-time features
from an online store kept live by the event feed; rollouts, guardrails, metrics, prediction log.

Nothing here is imported by the code location at load time (fastapi, redis and the models are
imported inside the functions that need them).
"""
