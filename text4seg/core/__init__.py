"""The ground floor: descriptor codec, tolerant parser, grid <-> mask, query and label rules, chat
templates, metrics, image reading and the one config base. Imports nothing else of this repository;
everything else builds on it."""
