"""Writes ``tales.txt``: short English stories about a capybara and friends, the demo corpus.

The text is generated from a fixed seed with the templates below, so it is
self-written, free of any licence question, and the same on every run:
``python data/make_tales.py`` rewrites the shipped file byte for byte. It has
real structure (grammar, recurring names, cause and effect) and is small
(about 300 KB), which is what a demo that shows the loss falling needs.
"""

from __future__ import annotations

import random
from pathlib import Path

NAMES = ["Capi", "Luna", "Tomas", "Rosa", "Bruno", "Mila", "Otto", "Nina", "Pablo", "Iris"]
ANIMALS = ["capybara", "heron", "turtle", "otter", "toucan", "frog", "tapir", "parrot", "caiman", "monkey"]
PLACES = ["the river", "the old mill", "the tall grass", "the muddy bank", "the quiet lake",
          "the market", "the orange grove", "the stone bridge", "the hill", "the reed marsh"]
THINGS = ["a red kite", "a basket of figs", "a brass key", "a wooden boat", "a silver bell",
          "a map of the valley", "a warm blanket", "a jar of honey", "a small drum", "a paper lantern"]
WEATHER = ["The sun was warm", "Rain fell softly", "A cool wind came down from the hills",
           "The morning was grey and still", "The sky was clear and blue", "Fog lay over the water"]
FEELINGS = ["happy", "tired", "curious", "worried", "proud", "sleepy", "brave", "hungry"]
ACTIONS = ["swam across", "walked along", "looked around", "sat beside", "ran to", "waited near"]
ENDINGS = ["That night everyone slept well.", "And that is why the river still sings.",
           "From then on, they met there every week.", "It was the best day of the summer.",
           "Nobody forgot that day.", "The next morning, the story began again."]


def sentence_count(rng: random.Random, a: str, b: str, n: int) -> str:
    total = n * 2
    return f"{a} had {n} {rng.choice(['figs', 'stones', 'shells', 'leaves'])} and {b} gave {a} {n} more, so {a} had {total}."


def tale(rng: random.Random) -> str:
    hero, friend = rng.sample(NAMES, 2)
    kind, other = rng.sample(ANIMALS, 2)
    place, goal = rng.sample(PLACES, 2)
    thing = rng.choice(THINGS)
    feeling = rng.choice(FEELINGS)
    lines = [
        f"{rng.choice(WEATHER)} when {hero} the {kind} woke up near {place}.",
        f"{hero} felt {feeling}, because {hero} had lost {thing}.",
        f"{hero} {rng.choice(ACTIONS)} {place} and called for {friend} the {other}.",
        f"\"Have you seen {thing}?\" asked {hero}.",
        f"\"No,\" said {friend}, \"but I will help you look for it near {goal}.\"",
        f"So {hero} and {friend} went together to {goal}.",
    ]
    if rng.random() < 0.5:
        lines.append(sentence_count(rng, hero, friend, rng.randint(1, 9)))
    if rng.random() < 0.5:
        lines.append(f"On the way they saw a {rng.choice(ANIMALS)} that {rng.choice(ACTIONS)} "
                     f"{rng.choice(PLACES)}.")
    lines += [
        f"At last {friend} found {thing} under a {rng.choice(['log', 'leaf', 'rock', 'bench'])}.",
        f"{hero} was no longer {feeling}; {hero} was glad.",
        f"\"Thank you, {friend},\" said {hero}. \"You are a good friend.\"",
        rng.choice(ENDINGS),
    ]
    return " ".join(lines)


def main() -> None:
    rng = random.Random(1947)
    tales = []
    size = 0
    while size < 300_000:
        text = tale(rng)
        tales.append(text)
        size += len(text) + 2
    Path(__file__).with_name("tales.txt").write_text("\n\n".join(tales) + "\n")


if __name__ == "__main__":
    main()
