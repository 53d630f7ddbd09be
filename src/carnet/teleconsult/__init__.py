"""Teleconsultation (issue 12 §1, docs/TELECONSULTATION.md): a video visit between a professional and the patient
side, peer to peer (WebRTC); Carnet books it, relays the signalling between the two browsers through the database
(any node), and puts on both screens a document either side shows, as the policy lets the other see it.

The one door: ``visits`` (book, read, cancel, end), ``room`` (join, leave, relay, poll, show), ``ice`` (STUN/TURN
for the browsers), ``fhir`` (the visit as ``Appointment`` and ``Encounter``)."""

from carnet.teleconsult.fhir import appointment, encounter, read_resource, search_resources
from carnet.teleconsult.ice import servers as ice_servers
from carnet.teleconsult.ice import turn_credential
from carnet.teleconsult.room import SHOWABLE, Joined, join, leave, poll, relay, show
from carnet.teleconsult.visits import MINUTES, Visit, agenda, cancel, close_stale, end, for_dossier, get, schedule
from carnet.teleconsult.wakeup import Wakeups, wakeups

__all__ = ["MINUTES", "SHOWABLE", "Joined", "Visit", "agenda", "appointment", "cancel", "close_stale", "encounter",
           "end",
           "for_dossier", "get", "ice_servers", "join", "leave", "poll", "read_resource", "relay", "schedule",
           "search_resources", "show", "turn_credential", "Wakeups", "wakeups"]
