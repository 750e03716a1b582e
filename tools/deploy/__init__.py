"""tools/deploy.py's package: building umqtt_paho for a board and copying it over USB
serial. The command and its manual are tools/deploy.py; each module here holds one job
(its header says which)."""
