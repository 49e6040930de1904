"""Datasets for ``bench/rag.py``'s recall measurements: vectors that look like sentence
embeddings, and the statistics that show how much they do.

Random unit vectors in 384-d are the worst case for an approximate index: every point is
nearly orthogonal to every other (cosine ~ 0 +- 0.05), so the "nearest" neighbours are
barely nearer than anything else and a graph walk has no gradient to follow. Sentence
embeddings are not like that: texts on one topic sit in a tight cone, and a query's true
neighbours are clearly closer than the rest. Three datasets, so the recall figures say
something about real use:

- :func:`generated_texts`: varied short texts (questions, complaints, notes, facts) over 24
  topics, each with its own vocabulary, a tenth of them mixing two topics; embedded with the
  packaged MiniLM they give *real* embeddings.
- :func:`clustered`: a Gaussian mixture at any size, fitted to the real embeddings'
  neighbour statistics and HNSW behaviour (see :class:`MixtureShape`; the benchmark prints
  both sets' statistics side by side, and measures both at the real set's size).
- :func:`random_unit`: the old worst case, kept for continuity.

Queries are always held-out points of the same distribution, never indexed points.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

# -- generated texts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Topic:
    """The vocabulary of one topic: things, actions (base-form verb phrases), troubles
    (what went wrong, past tense) and facts (complete statements)."""

    things: tuple[str, ...]
    actions: tuple[str, ...]
    troubles: tuple[str, ...]
    facts: tuple[str, ...]


TOPICS: dict[str, Topic] = {
    "billing": Topic(
        ("invoice", "refund", "credit card", "receipt", "annual plan", "payment method"),
        (
            "update my payment method",
            "download last month's invoice",
            "request a refund",
            "change the billing address",
            "switch to the annual plan",
            "cancel auto-renewal",
        ),
        (
            "was charged twice",
            "shows the wrong VAT number",
            "never arrived by email",
            "was declined at checkout",
        ),
        (
            "Refunds reach the original card within five business days.",
            "Invoices are issued on the first day of each month.",
            "The annual plan costs the same as ten monthly payments.",
        ),
    ),
    "shipping": Topic(
        ("parcel", "tracking number", "courier", "delivery slot", "customs form", "warehouse"),
        (
            "track my parcel",
            "change the delivery address",
            "book a return pickup",
            "choose express delivery",
            "print a return label",
            "collect the order in store",
        ),
        (
            "got stuck at customs",
            "was delivered to a neighbour",
            "arrived damaged",
            "has not moved for a week",
        ),
        (
            "Standard delivery takes three to five working days.",
            "Orders placed before noon leave the warehouse the same day.",
            "Parcels above two kilograms need a signature.",
        ),
    ),
    "accounts": Topic(
        ("password", "two-factor code", "login page", "recovery email", "session", "username"),
        (
            "reset my password",
            "turn on two-factor authentication",
            "change my username",
            "sign out of all devices",
            "recover a locked account",
            "delete my account",
        ),
        (
            "keeps logging me out",
            "rejects the verification code",
            "was locked after three tries",
            "sends the reset link to an old address",
        ),
        (
            "Reset links expire after thirty minutes.",
            "Accounts are locked for an hour after five failed sign-ins.",
            "Two-factor codes change every thirty seconds.",
        ),
    ),
    "cloud": Topic(
        (
            "Kubernetes cluster",
            "load balancer",
            "container image",
            "autoscaling group",
            "availability zone",
            "virtual machine",
        ),
        (
            "scale the cluster to ten nodes",
            "roll back the last deployment",
            "rotate the TLS certificates",
            "move the service to another region",
            "drain a node before maintenance",
            "pin the container image version",
        ),
        (
            "ran out of memory during the nightly job",
            "failed its health checks",
            "lost connection to the control plane",
            "kept restarting in a crash loop",
        ),
        (
            "The load balancer removes a target after three failed health checks.",
            "Each availability zone has its own power and network.",
            "Autoscaling adds a node when CPU stays above seventy percent.",
        ),
    ),
    "databases": Topic(
        (
            "PostgreSQL replica",
            "index",
            "query plan",
            "transaction log",
            "connection pool",
            "schema migration",
        ),
        (
            "add an index on the orders table",
            "run the schema migration",
            "vacuum the big table",
            "promote the replica to primary",
            "raise the connection pool size",
            "restore last night's backup",
        ),
        (
            "fell hours behind the primary",
            "locked the table for ten minutes",
            "chose a sequential scan",
            "ran out of connections at peak time",
        ),
        (
            "A B-tree index speeds up equality and range lookups.",
            "Replication lag grows when the replica cannot replay the log fast enough.",
            "Vacuum reclaims the space of deleted rows.",
        ),
    ),
    "cooking": Topic(
        ("sourdough starter", "risotto", "cast-iron pan", "oven", "bread dough", "tomato sauce"),
        (
            "proof the dough overnight",
            "season a cast-iron pan",
            "thicken the sauce",
            "caramelise the onions",
            "bake the bread at a higher temperature",
            "keep the risotto creamy",
        ),
        (
            "came out dense and flat",
            "burned on the bottom",
            "turned sour and grey",
            "stuck to the pan",
        ),
        (
            "Bread dough doubles in size when it has proofed enough.",
            "Salt slows the yeast, so add it after the first mix.",
            "Risotto needs the stock added one ladle at a time.",
        ),
    ),
    "gardening": Topic(
        ("tomato plants", "compost heap", "rose bush", "lawn", "seedlings", "raised bed"),
        (
            "prune the roses in spring",
            "start seedlings indoors",
            "water the lawn less often",
            "build a raised bed",
            "turn the compost heap",
            "protect plants from frost",
        ),
        ("got yellow leaves", "was eaten by slugs", "wilted in the heat", "never flowered"),
        (
            "Tomatoes need at least six hours of sun a day.",
            "Compost is ready when it smells like earth.",
            "Roses flower on new wood, so prune them in early spring.",
        ),
    ),
    "astronomy": Topic(
        (
            "telescope",
            "lunar eclipse",
            "Jupiter's moons",
            "meteor shower",
            "star chart",
            "the Andromeda galaxy",
        ),
        (
            "photograph the Milky Way",
            "align the telescope mount",
            "find Saturn's rings",
            "watch the meteor shower",
            "observe a lunar eclipse",
            "spot the space station",
        ),
        (
            "showed only a blurry disc",
            "was hidden behind clouds",
            "drifted out of view",
            "fogged up in the cold",
        ),
        (
            "A lunar eclipse happens when the Earth's shadow falls on the Moon.",
            "The Andromeda galaxy is about two and a half million light years away.",
            "Jupiter's four largest moons are visible with binoculars.",
        ),
    ),
    "medicine": Topic(
        ("antibiotics", "blood pressure", "vaccine", "prescription", "allergy", "flu symptoms"),
        (
            "renew my prescription",
            "book a vaccination",
            "lower my blood pressure",
            "treat a mild allergy",
            "take antibiotics with food",
            "recover from the flu faster",
        ),
        (
            "caused a rash",
            "stayed high for weeks",
            "did not help the fever",
            "ran out before the refill",
        ),
        (
            "Antibiotics do not work against viral infections.",
            "A vaccine trains the immune system before a real infection.",
            "Blood pressure is usually lowest during sleep.",
        ),
    ),
    "law": Topic(
        (
            "rental contract",
            "notice period",
            "warranty",
            "court hearing",
            "tenancy deposit",
            "employment contract",
        ),
        (
            "end the rental contract early",
            "claim under the warranty",
            "get the tenancy deposit back",
            "appeal the court decision",
            "sign a contract remotely",
            "check the notice period",
        ),
        (
            "was withheld without reason",
            "expired last month",
            "was postponed again",
            "left out the cancellation clause",
        ),
        (
            "A landlord must return the deposit within a month of the tenancy ending.",
            "Most warranties cover defects but not accidental damage.",
            "A notice period starts on the day the letter is received.",
        ),
    ),
    "travel": Topic(
        ("flight", "hotel booking", "passport", "train ticket", "boarding pass", "visa"),
        (
            "change my flight date",
            "cancel the hotel booking",
            "renew my passport",
            "apply for a tourist visa",
            "upgrade to business class",
            "check in online",
        ),
        (
            "was cancelled at the last minute",
            "was overbooked",
            "lost my checked bag",
            "was rejected at the border",
        ),
        (
            "Airlines must compensate passengers for delays over three hours.",
            "A passport should be valid six months beyond the trip.",
            "Online check-in opens a day before departure.",
        ),
    ),
    "football": Topic(
        (
            "penalty kick",
            "offside rule",
            "league table",
            "goalkeeper",
            "transfer window",
            "derby match",
        ),
        (
            "buy tickets for the derby",
            "explain the offside rule",
            "follow the league table",
            "train as a goalkeeper",
            "improve my free kicks",
            "watch the match abroad",
        ),
        (
            "was ruled out by the referee",
            "ended in a goalless draw",
            "was moved to a weekday",
            "was decided on penalties",
        ),
        (
            "A player is offside if nearer the goal line than the ball and the second-last "
            "defender.",
            "The transfer window closes at the end of August.",
            "A win is worth three points in the league table.",
        ),
    ),
    "music": Topic(
        (
            "guitar",
            "piano lessons",
            "chord progression",
            "metronome",
            "concert tickets",
            "vinyl record",
        ),
        (
            "tune the guitar by ear",
            "practise scales every day",
            "learn a song by ear",
            "record a demo at home",
            "buy concert tickets",
            "clean a vinyl record",
        ),
        (
            "buzzes on the third fret",
            "sounded out of tune",
            "skipped on the turntable",
            "sold out in minutes",
        ),
        (
            "A major chord is the root, the major third and the fifth.",
            "Practising slowly with a metronome builds accuracy.",
            "Vinyl records should be stored upright.",
        ),
    ),
    "investing": Topic(
        ("index fund", "stock portfolio", "bond yield", "pension", "dividend", "interest rate"),
        (
            "diversify my portfolio",
            "start a pension early",
            "rebalance once a year",
            "buy a low-cost index fund",
            "reinvest the dividends",
            "compare savings rates",
        ),
        (
            "lost a fifth of its value",
            "paid a smaller dividend",
            "rose after the rate cut",
            "charged hidden fees",
        ),
        (
            "Bond prices fall when interest rates rise.",
            "An index fund follows a market index at low cost.",
            "Compound interest grows savings faster the earlier you start.",
        ),
    ),
    "hiring": Topic(
        (
            "job interview",
            "salary offer",
            "reference letter",
            "onboarding",
            "probation period",
            "performance review",
        ),
        (
            "prepare for a job interview",
            "negotiate the salary offer",
            "ask for a reference",
            "plan the onboarding week",
            "write a performance review",
            "request remote work",
        ),
        (
            "was withdrawn after the interview",
            "came in below the market rate",
            "was delayed by a month",
            "ended without feedback",
        ),
        (
            "Probation periods usually last three to six months.",
            "Structured interviews predict job performance better than unstructured ones.",
            "Onboarding goes faster with a named buddy.",
        ),
    ),
    "school": Topic(
        ("homework", "exam timetable", "essay", "school trip", "report card", "maths class"),
        (
            "help my child with maths homework",
            "revise for the final exam",
            "write a persuasive essay",
            "apply for a scholarship",
            "join the school trip",
            "improve reading skills",
        ),
        (
            "was handed in late",
            "clashed with another exam",
            "got a lower grade than expected",
            "was cancelled because of snow",
        ),
        (
            "Spaced repetition helps students remember more.",
            "Exams are marked by two teachers when grades are close.",
            "Reading aloud builds fluency in young children.",
        ),
    ),
    "weather": Topic(
        ("heatwave", "thunderstorm", "weather forecast", "rainfall", "snowstorm", "flood warning"),
        (
            "prepare the house for a storm",
            "read a weather map",
            "stay cool during a heatwave",
            "check the flood warnings",
            "drive safely in snow",
            "measure the rainfall",
        ),
        (
            "knocked out the power",
            "flooded the basement",
            "closed the mountain roads",
            "brought hail the size of marbles",
        ),
        (
            "Thunderstorms form when warm moist air rises quickly.",
            "A heatwave is several days well above the usual temperature.",
            "Flood warnings are issued when rivers are expected to burst their banks.",
        ),
    ),
    "cars": Topic(
        (
            "car battery",
            "brake pads",
            "engine oil",
            "winter tyres",
            "electric car",
            "dashboard warning light",
        ),
        (
            "jump-start a flat battery",
            "change the engine oil",
            "fit winter tyres",
            "charge an electric car at home",
            "replace the brake pads",
            "pass the annual inspection",
        ),
        (
            "would not start this morning",
            "squeals when braking",
            "lost range in the cold",
            "shows an orange warning light",
        ),
        (
            "Brake pads usually last between thirty and seventy thousand kilometres.",
            "Cold weather reduces an electric car's range.",
            "Engine oil should be changed about once a year.",
        ),
    ),
    "housing": Topic(
        ("mortgage", "apartment viewing", "boiler", "home insurance", "leaking roof", "renovation"),
        (
            "get a mortgage approved",
            "book an apartment viewing",
            "fix a leaking roof",
            "insulate the attic",
            "compare home insurance quotes",
            "plan a kitchen renovation",
        ),
        (
            "broke down in the middle of winter",
            "went over budget",
            "failed the survey",
            "let water into the bedroom",
        ),
        (
            "Lenders usually cap a mortgage at four and a half times income.",
            "Attic insulation pays for itself in a few winters.",
            "A boiler should be serviced once a year.",
        ),
    ),
    "pets": Topic(
        ("puppy", "cat litter", "vet appointment", "dog lead", "aquarium", "flea treatment"),
        (
            "house-train a puppy",
            "introduce a new cat",
            "book a vet appointment",
            "clean the aquarium filter",
            "stop the dog pulling on the lead",
            "give the flea treatment",
        ),
        ("stopped eating", "scratches the furniture", "barks at night", "got fleas again"),
        (
            "Puppies need to go outside after every meal.",
            "Cats should be vaccinated every year.",
            "An aquarium filter should never be rinsed in tap water.",
        ),
    ),
    "fitness": Topic(
        (
            "marathon training",
            "gym membership",
            "running shoes",
            "knee pain",
            "yoga class",
            "protein intake",
        ),
        (
            "train for a first marathon",
            "build muscle at home",
            "stretch after running",
            "cancel my gym membership",
            "recover from knee pain",
            "start yoga as a beginner",
        ),
        (
            "got worse after long runs",
            "was renewed without asking",
            "wore out in three months",
            "left me sore for days",
        ),
        (
            "Long runs should be no more than a third of weekly distance.",
            "Muscles grow during rest, not during training.",
            "Running shoes last about eight hundred kilometres.",
        ),
    ),
    "history": Topic(
        (
            "Roman Empire",
            "French Revolution",
            "Industrial Revolution",
            "Cold War",
            "Silk Road",
            "printing press",
        ),
        (
            "explain the fall of Rome",
            "summarise the causes of the French Revolution",
            "trace the Silk Road trade",
            "compare the two world wars",
            "date the invention of the printing press",
            "explain the Cold War arms race",
        ),
        (
            "is often misremembered",
            "was taught in one lesson",
            "left no written records",
            "is still debated by historians",
        ),
        (
            "The printing press spread across Europe within fifty years of 1450.",
            "The Silk Road carried silk, spices and ideas between China and the Mediterranean.",
            "The Industrial Revolution began in Britain's textile mills.",
        ),
    ),
    "software": Topic(
        (
            "unit test",
            "pull request",
            "memory leak",
            "API endpoint",
            "build pipeline",
            "dependency upgrade",
        ),
        (
            "write a unit test for the parser",
            "review the pull request",
            "find the memory leak",
            "version the API endpoint",
            "speed up the build pipeline",
            "upgrade the dependencies safely",
        ),
        (
            "fails only on CI",
            "broke after the upgrade",
            "times out under load",
            "returns a 500 error",
        ),
        (
            "A flaky test passes and fails without any code change.",
            "Semantic versioning bumps the major number for breaking changes.",
            "Caching dependencies shortens a build pipeline.",
        ),
    ),
    "security": Topic(
        (
            "phishing email",
            "firewall rule",
            "encryption key",
            "security patch",
            "VPN",
            "data breach",
        ),
        (
            "report a phishing email",
            "open a port in the firewall",
            "rotate the encryption keys",
            "install the security patch",
            "connect through the VPN",
            "respond to a data breach",
        ),
        (
            "slipped past the spam filter",
            "blocked the office printer",
            "leaked customer emails",
            "was left unpatched for months",
        ),
        (
            "Phishing emails often fake urgency to make people click.",
            "Encryption keys should be rotated on a schedule.",
            "A breach must be reported to the regulator within seventy-two hours.",
        ),
    ),
}

_FRAMES = (
    "How do I {action}?",
    "Can someone explain how to {action}?",
    "What is the fastest way to {action}?",
    "I tried to {action} but the {thing} {trouble}.",
    "My {thing} {trouble}, what should I do?",
    "Why does the {thing} matter when you {action}?",
    "Note to self: {action} {when}.",
    "We need to {action} {when}; last time the {thing} {trouble}.",
    "Is it safe to {action} without checking the {thing}?",
    "{fact}",
    "{fact} That is why you should {action}.",
    "Quick question about the {thing}: {fact_lower}",
    "The {thing} {trouble} again {when}.",
    "Step by step: first look at the {thing}, then {action}.",
    "Complaint: the {thing} {trouble} and nobody answered.",
)
_WHEN = (
    "next week",
    "on Friday",
    "tonight",
    "before the holidays",
    "this morning",
    "by the end of the month",
    "yesterday",
    "after the update",
)


def _fill(frame: str, topic: Topic, rng: random.Random) -> str:
    fact = rng.choice(topic.facts)
    return frame.format(
        action=rng.choice(topic.actions),
        thing=rng.choice(topic.things),
        trouble=rng.choice(topic.troubles),
        when=rng.choice(_WHEN),
        fact=fact,
        fact_lower=fact[0].lower() + fact[1:],
    )


def generated_texts(count: int, seed: int = 11) -> list[str]:
    """``count`` distinct texts of one to three sentences over :data:`TOPICS`.

    Each text draws a frame and fills it from one topic; a tenth add a sentence from a second
    topic, and a third add a second sentence of their own topic, so neighbourhoods are
    topical but not perfectly separated, as in a real support or knowledge-base corpus.
    """
    rng = random.Random(seed)
    names = sorted(TOPICS)
    seen: set[str] = set()
    texts: list[str] = []
    while len(texts) < count:
        topic = TOPICS[rng.choice(names)]
        parts = [_fill(rng.choice(_FRAMES), topic, rng)]
        if rng.random() < 0.33:
            parts.append(_fill(rng.choice(_FRAMES), topic, rng))
        if rng.random() < 0.1:
            parts.append(_fill(rng.choice(_FRAMES), TOPICS[rng.choice(names)], rng))
        text = " ".join(parts)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


# -- vectors --------------------------------------------------------------------------------


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, dim: int = 384, seed: int = 1) -> np.ndarray:
    """``n`` uniformly random unit vectors: no neighbourhood structure (the worst case)."""
    return _normalise(np.random.default_rng(seed).standard_normal((n, dim)))


@dataclass(frozen=True, slots=True)
class MixtureShape:
    """The parameters of :func:`clustered`, fitted to MiniLM embeddings of
    :func:`generated_texts`.

    First by a grid search over these fields matching, at 6,000 and at 30,000 points, the
    quantiles of each held-out query's 1st and 10th neighbour cosine, the cosine of
    unrelated pairs and the TwoNN intrinsic dimension (``bench/rag.py`` prints both sets'
    figures on every run). That fit (``vary`` 0.2) was too easy for HNSW, though: at 30k
    an m 16 / ef_construction 64 graph found 0.98-0.99 of its top 10 against 0.94-0.96 on
    the real set, and its misses were single points where the real set's were whole
    neighbourhoods. The real set holds tight groups of near-paraphrases beside loose
    topics, and the graph's pruning leaves tight groups poorly linked; ``vary`` 0.6 (cluster
    spreads within ~0.3 to ~3 times the typical one) brought FAISS HNSW recall at 30k to the
    real set's (0.953/0.961/0.979 against 0.957/0.963/0.968 at ef 40/64/128), at the cost of
    wider 10th-neighbour quantiles. pgvector still finds it easier than the real set at
    equal size (the benchmark measures both): its figures at 100k are an upper bound.

    Attributes:
        clusters: number of cluster centres (sub-topics: one kind of question on one topic;
            1,500 matched the growth of neighbour cosines from 6k to 30k points better than
            a few hundred, which fill up too fast).
        topics: number of topics the centres are grouped in; centres of one topic are close.
        topic: weight of the topic's direction in its centres (against 1 for the centre's
            own direction): the larger, the closer a topic's clusters.
        common: weight of one direction shared by every centre: sentence embeddings are
            anisotropic (two unrelated texts still have a positive cosine, ~0.08 here).
        rank: the dimensions a cluster spreads in: real embeddings vary along few
            directions locally (an intrinsic dimension of ~7 here), not along all 384.
        spread: the typical norm of a point's offset from its (unit) centre.
        vary: the standard deviation of the log of each cluster's spread: some clusters
            are tight (near-paraphrases), some loose (see above).
        decay: how fast the ``rank`` directions' scales fall off (power law).
        noise: the norm of an isotropic offset in all 384 dimensions.
        evenness: Dirichlet concentration of the cluster sizes (larger: more even).
    """

    clusters: int = 1500
    topics: int = 24
    topic: float = 2.2
    common: float = 0.7
    rank: int = 8
    spread: float = 0.7
    vary: float = 0.6
    decay: float = 0.5
    noise: float = 0.15
    evenness: float = 2.0


def clustered(
    n: int, dim: int = 384, shape: MixtureShape | None = None, seed: int = 2
) -> np.ndarray:
    """``n`` unit vectors from a Gaussian mixture shaped like sentence embeddings.

    Centre ``k`` is ``normalise(common * g + topic * t_j + o_k)``: ``g`` one direction shared
    by all, ``t_j`` the direction of its topic ``j``, ``o_k`` its own. A point of cluster
    ``k`` is ``normalise(c_k + U_k (s_k * z) + noise * e)``: ``U_k`` holds ``rank`` random
    directions of the cluster, ``s_k`` their scales (a power law, norm = the cluster's
    spread), ``z`` and ``e`` standard normal (``e`` scaled to an expected norm ``noise``).
    Points are i.i.d., so held-out queries are just more points: draw ``n + queries`` and
    split. The same ``seed`` gives the same centres at any ``n``, so a calibration at a
    small ``n`` describes the large set (a corpus that grows with more texts on the same
    topics).
    """
    shape = shape or MixtureShape()
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    topics = _normalise(rng.standard_normal((shape.topics, dim)))
    own = _normalise(rng.standard_normal((shape.clusters, dim)))
    parent = rng.integers(0, shape.topics, shape.clusters)
    centres = _normalise(shape.common * common + shape.topic * topics[parent] + own)
    spreads = shape.spread * np.exp(shape.vary * rng.standard_normal(shape.clusters))
    bases = rng.standard_normal((shape.clusters, shape.rank, dim)) / np.sqrt(dim)
    weights = rng.dirichlet(np.full(shape.clusters, shape.evenness))
    scales = np.arange(1, shape.rank + 1, dtype=np.float64) ** -shape.decay
    scales /= np.sqrt((scales**2).sum())
    points = np.random.default_rng((seed, n))
    label = points.choice(shape.clusters, size=n, p=weights)
    out = np.empty((n, dim), dtype=np.float32)
    for k in np.unique(label):
        rows = np.flatnonzero(label == k)
        z = points.standard_normal((len(rows), shape.rank)) * (scales * spreads[k])
        e = points.standard_normal((len(rows), dim)) * (shape.noise / np.sqrt(dim))
        out[rows] = centres[k] + z @ bases[k] + e
    return _normalise(out)


# -- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeighbourStats:
    """Summary of a set's neighbour structure, for comparing two sets of vectors.

    Attributes:
        nn1: quantiles (5, 25, 50, 75, 95 %) of each query's cosine to its nearest point.
        nn10: the same for the 10th nearest.
        gap: median of (1st - 10th) cosine: how much nearer the nearest is; near 0 for
            random vectors, which is what makes them hard.
        background: mean and standard deviation of the cosine between unrelated pairs.
        intrinsic: TwoNN estimate of the intrinsic dimension (Facco et al. 2017), from the
            ratio of each point's second to first neighbour distance.
    """

    nn1: tuple[float, ...]
    nn10: tuple[float, ...]
    gap: float
    background: tuple[float, float]
    intrinsic: float


QUANTILES = (5, 25, 50, 75, 95)


def neighbour_stats(data: np.ndarray, queries: np.ndarray, seed: int = 5) -> NeighbourStats:
    """The :class:`NeighbourStats` of held-out ``queries`` against ``data`` (exact)."""
    sims = queries @ data.T
    top = -np.sort(-np.partition(sims, -10, axis=1)[:, -10:], axis=1)
    rng = np.random.default_rng(seed)
    a = data[rng.integers(0, len(data), 4000)]
    b = data[rng.integers(0, len(data), 4000)]
    background = (a * b).sum(axis=1)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * top[:, :2], 1e-12))
    ratio = distance[:, 1] / distance[:, 0]
    ratio = ratio[ratio > 1.0]
    intrinsic = float(len(ratio) / np.log(ratio).sum()) if len(ratio) else float("nan")
    return NeighbourStats(
        tuple(float(v) for v in np.percentile(top[:, 0], QUANTILES)),
        tuple(float(v) for v in np.percentile(top[:, 9], QUANTILES)),
        float(np.median(top[:, 0] - top[:, 9])),
        (float(background.mean()), float(background.std())),
        intrinsic,
    )


def exact_top(data: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Row indices of each query's ``k`` nearest points by cosine (unit vectors), best
    first: the ground truth recall is measured against."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ data.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start : start + 256] = np.take_along_axis(part, order, axis=1)
    return out
