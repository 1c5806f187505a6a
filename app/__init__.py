"""Panda's dashboard: a Streamlit client of the run-directory contract in :mod:`trainer.contract.rundir`.

The app depends on the trainer package (for the contract), never the reverse.
"""
