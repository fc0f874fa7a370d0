"""What the synthetic text says: sign words, shop-front phrases, numbers and random strings."""

from __future__ import annotations

import numpy as np

SIGN_WORDS = (
    "EXIT", "STOP", "OPEN", "CLOSED", "SALE", "CAFE", "HOTEL", "BAR", "PUSH", "PULL", "ENTER", "TAXI",
    "BUS", "PARKING", "POLICE", "DANGER", "NO ENTRY", "ONE WAY", "FIRE", "EXIT ONLY", "TOILET", "BANK",
    "PHARMACY", "BAKERY", "MARKET", "STATION", "PLATFORM", "TICKETS", "WELCOME", "THANK YOU", "SOUTH",
    "NORTH", "EAST", "WEST", "AVENUE", "STREET", "ROAD", "BRIDGE", "MUSEUM", "LIBRARY", "SCHOOL",
    "HOSPITAL", "GARDEN", "PIZZA", "COFFEE", "TEA", "BOOKS", "MUSIC", "CINEMA", "THEATRE", "GYM",
    "FRESH", "FOOD", "DRINKS", "WATER", "SALE 50%", "NEW", "FREE", "WIFI", "CASH", "CARD", "LOBBY",
    "ELEVATOR", "STAIRS", "CAUTION", "SLOW", "YIELD", "SPEED", "LIMIT", "ZONE", "AIRPORT", "PORT",
    "HARBOR", "BEACH", "PARK", "CITY", "CENTRE", "MALL", "SHOP", "STORE", "OUTLET", "FASHION", "SHOES",
    "BIKE", "RENTAL", "REPAIR", "SERVICE", "OFFICE", "POST", "MAIL", "DELIVERY", "ORDER", "MENU",
    "BREAKFAST", "LUNCH", "DINNER", "KITCHEN", "GRILL", "BURGER", "NOODLES", "SUSHI", "FRUIT",
    "FLOWERS", "GIFTS", "TOYS", "GAMES", "SPORTS", "TENNIS", "GOLF", "SWIM", "POOL", "SAUNA", "SPA",
    "HAIR", "BEAUTY", "DENTIST", "CLINIC", "LAB", "STUDIO", "GALLERY", "ART", "PHOTO", "PRINT",
    "COPY", "LAUNDRY", "HOSTEL", "INN", "MOTEL", "CAMP", "TRAIL", "SUMMIT", "VALLEY", "RIVER", "LAKE",
)  # fmt: skip
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"


def sample_text(rng: np.random.Generator) -> str:
    """A word or short phrase: a sign word (60%), a number (15%), or a random string (25%), in a random case."""
    roll = rng.random()
    if roll < 0.6:
        text = SIGN_WORDS[rng.integers(len(SIGN_WORDS))]
    elif roll < 0.75:
        n = int(rng.integers(1, 5))
        text = "".join(_DIGITS[i] for i in rng.integers(0, 10, size=n))
    else:
        n = int(rng.integers(2, 9))
        text = "".join(_LETTERS[i] for i in rng.integers(0, 26, size=n))
    case = rng.random()
    if case < 0.25:
        return text.lower()
    if case < 0.45:
        return text.title()
    return text
