"""Notifications after each committed transition: who must act next is told through WeChat, by the worker.

web process ── JobQueueSink (sink.py) ──► arq queue ──► worker (echain/worker.py)
    notify_transition: who must act next, read from the database after commit (targets.py)
    send_notice: one person, subscribe message when they allowed one, else OA template (delivery.py)
"""
