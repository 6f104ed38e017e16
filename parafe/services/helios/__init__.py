"""Helios through S²LOW: accounts, PES_Retour fetching and the returns a client fetches."""
