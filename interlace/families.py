"""Response distributions and link functions of generalized linear mixed models, as R's
``family`` objects (``binomial(link = "logit")``, ``poisson()``).

A :class:`Family` says what the fit needs of a distribution: its variance function, its
-2 log-likelihood with every normalising constant (R's ``family$aic``, which lme4's
Laplace deviance uses), deviance residuals, how to read and check a response, a start
for the mean, and how to draw new responses. A :class:`Link` gives eta = g(mu), its
inverse and d mu / d eta. The fit's inner loop evaluates them in compiled code through
integer codes (:data:`Family.code`, :data:`Link.code`, :mod:`interlace.kernels.glm`);
a new distribution adds its code there and a subclass here, and the fit is unchanged.

Examples
--------
>>> binomial().link.name, poisson().link.name, binomial("probit").name
('logit', 'log', 'binomial')
>>> family_of("poisson").variance(np.array([2.0])).tolist()
[2.0]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy import special

from .errors import DataError, InterlaceError

# codes shared with the compiled kernels (interlace.kernels.glm)
LINK_CODES = {"logit": 0, "probit": 1, "cloglog": 2, "log": 3, "identity": 4, "inverse": 5, "sqrt": 6}
FAMILY_CODES = {"binomial": 0, "poisson": 1}


@dataclass(frozen=True)
class Link:
    """A link function: ``eta = link(mu)``, ``mu = inverse(eta)``, ``mu_eta(eta) = d mu / d eta``.

    Examples
    --------
    >>> g = Link("logit")
    >>> float(g.inverse(np.array([0.0]))[0]), float(g.mu_eta(np.array([0.0]))[0])
    (0.5, 0.25)
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in LINK_CODES:
            raise InterlaceError(f"link: expected one of {', '.join(map(repr, LINK_CODES))}, found {self.name!r}")

    @property
    def code(self) -> int:
        """The link's integer code in the compiled kernels."""
        return LINK_CODES[self.name]

    def link(self, mu: np.ndarray) -> np.ndarray:
        """eta = g(mu)."""
        mu = np.asarray(mu, dtype=np.float64)
        name = self.name
        if name == "logit":
            return special.logit(mu)
        if name == "probit":
            return special.ndtri(mu)
        if name == "cloglog":
            return np.log(-np.log1p(-mu))
        if name == "log":
            return np.log(mu)
        if name == "inverse":
            return 1.0 / mu
        if name == "sqrt":
            return np.sqrt(mu)
        return mu.copy()

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        """mu = g^{-1}(eta), kept inside the family's range as R's ``linkinv`` does."""
        from .kernels.glm import inverse_link

        return inverse_link(np.ascontiguousarray(eta, dtype=np.float64), self.code)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta."""
        from .kernels.glm import mu_eta

        return mu_eta(np.ascontiguousarray(eta, dtype=np.float64), self.code)


class Family(ABC):
    """A response distribution with its link (see the module docstring).

    Attributes
    ----------
    name : str
        R's name (``"binomial"``, ``"poisson"``).
    link : Link
    links : tuple of str
        The links the distribution takes.
    """

    name = ""
    links: tuple[str, ...] = ()
    default_link = ""

    def __init__(self, link: str | Link | None = None):
        if link is None:
            link = self.default_link
        name = link.name if isinstance(link, Link) else link
        if not isinstance(name, str) or name not in self.links:
            raise InterlaceError(
                f"link: the {self.name} family takes {', '.join(map(repr, self.links))}, found {name!r}")
        self.link = Link(name)

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.link == self.link  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.name, self.link.name))

    @property
    def code(self) -> int:
        """The distribution's integer code in the compiled kernels."""
        return FAMILY_CODES[self.name]

    @abstractmethod
    def variance(self, mu: np.ndarray) -> np.ndarray:
        """V(mu), the variance function."""

    @abstractmethod
    def check(self, y: np.ndarray, weights: np.ndarray, name: str) -> None:
        """An error naming the response (``name``) when ``y`` is not of this family."""

    @abstractmethod
    def start_mean(self, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """R's ``mustart``: where the first iteration starts."""

    @abstractmethod
    def loglik_terms(self, y: np.ndarray, weights: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(a, b, c): the log-likelihood of the rows at means mu is
        ``sum(a log(mu) + b log(1 - mu))`` (binomial) or ``sum(a log(mu) - b mu)``
        (Poisson) less c / 2, with R's ``family$aic`` conventions (``weights``: the
        rows' weights w, prior weights times trials; ``trials``: the binomial trials
        of a ``cbind`` response, else 1)."""

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """sign(y - mu) sqrt(d_i), d_i R's ``dev.resids``."""
        from .kernels.glm import unit_deviance

        d = unit_deviance(np.ascontiguousarray(y, dtype=np.float64), np.ascontiguousarray(mu, dtype=np.float64),
                          np.ascontiguousarray(weights, dtype=np.float64), self.code)
        return np.sign(y - mu) * np.sqrt(np.maximum(d, 0.0))

    @abstractmethod
    def simulate(self, mu: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One response per row drawn at mean ``mu`` (R's ``simulate``)."""


class Binomial(Family):
    """The binomial distribution: y the proportion of successes in ``weights`` trials
    (R: a 0/1 response has one trial per row; ``cbind(s, f)`` gives y = s / (s + f) and
    s + f trials).

    Examples
    --------
    >>> b = Binomial()
    >>> b.variance(np.array([0.2])).round(2).tolist()
    [0.16]
    """

    name = "binomial"
    links = ("logit", "probit", "cloglog", "log")
    default_link = "logit"

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * (1.0 - mu)

    def check(self, y: np.ndarray, weights: np.ndarray, name: str) -> None:
        outside = (y < 0) | (y > 1)
        if outside.any():
            raise DataError(
                f"response {name!r}: a binomial response is a proportion between 0 and 1 (with weights= the "
                f"trials), a 0/1 or logical column, a factor, or cbind(successes, failures); found "
                f"{int(outside.sum())} value(s) outside [0, 1] (e.g. {y[np.argmax(outside)]:g})")
        successes = y * weights
        if np.any(np.abs(successes - np.round(successes)) > 1e-7 * np.maximum(1.0, np.abs(successes))):
            import warnings

            warnings.warn(f"response {name!r}: non-integer #successes in a binomial glm (as R's glm: the "
                          "likelihood rounds them)", UserWarning, stacklevel=4)

    def start_mean(self, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return (weights * y + 0.5) / (weights + 1.0)

    def loglik_terms(self, y, weights, trials):
        # R's binomial()$aic: m = the trials when some exceed 1, else the weights;
        # -2 sum (w / m) log dbinom(round(m y), round(m), mu)
        m = trials if np.any(trials > 1) else weights
        rounded = np.round(m)
        successes = np.round(m * y)
        share = np.where(m > 0, weights / np.where(m > 0, m, 1.0), 0.0)
        log_choose = special.gammaln(rounded + 1) - special.gammaln(successes + 1) - special.gammaln(
            rounded - successes + 1)
        return share * successes, share * (rounded - successes), float(-2.0 * np.sum(share * log_choose))

    def simulate(self, mu: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        trials = np.round(weights).astype(np.int64)
        draws = rng.binomial(np.maximum(trials, 0), np.clip(mu, 0.0, 1.0))
        return np.where(trials > 0, draws / np.maximum(trials, 1), 0.0)


class Poisson(Family):
    """The Poisson distribution of counts.

    Examples
    --------
    >>> Poisson().link.name
    'log'
    """

    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return np.asarray(mu, dtype=np.float64).copy()

    def check(self, y: np.ndarray, weights: np.ndarray, name: str) -> None:
        if np.any(y < 0):
            raise DataError(f"response {name!r}: a Poisson response is a count, found {int(np.sum(y < 0))} "
                            f"negative value(s) (e.g. {y[np.argmax(y < 0)]:g})")
        fractional = np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))
        if fractional.any():
            raise DataError(f"response {name!r}: a Poisson response is a count, found {int(fractional.sum())} "
                            f"non-integer value(s) (e.g. {y[np.argmax(fractional)]:g})")

    def start_mean(self, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return y + 0.1

    def loglik_terms(self, y, weights, trials):
        # R's poisson()$aic: -2 sum w log dpois(y, mu)
        return weights * y, weights.copy(), float(2.0 * np.sum(weights * special.gammaln(y + 1.0)))

    def simulate(self, mu: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.maximum(mu, 0.0)).astype(np.float64)


def binomial(link: str = "logit") -> Binomial:
    """R's ``binomial(link = "logit")``: also ``"probit"``, ``"cloglog"``, ``"log"``."""
    return Binomial(link)


def poisson(link: str = "log") -> Poisson:
    """R's ``poisson(link = "log")``: also ``"identity"``, ``"sqrt"``."""
    return Poisson(link)


FAMILIES = {"binomial": Binomial, "poisson": Poisson}


def family_of(family) -> Family:
    """A Family from ``family=``: a name (``"binomial"``, ``"poisson"``) with its default
    link, or a Family object.

    Examples
    --------
    >>> family_of("Binomial")
    binomial(link='logit')
    >>> family_of("gaussian")
    Traceback (most recent call last):
    ...
    interlace.errors.InterlaceError: family: expected 'binomial', 'poisson' or a family object such as interlace.binomial(link='probit'), found 'gaussian' (a linear mixed model is fitted without family=)
    """
    if isinstance(family, Family):
        return family
    if isinstance(family, str) and family.lower() in FAMILIES:
        return FAMILIES[family.lower()]()
    hint = (" (a linear mixed model is fitted without family=)"
            if isinstance(family, str) and family.lower() == "gaussian" else "")
    raise InterlaceError(
        "family: expected 'binomial', 'poisson' or a family object such as interlace.binomial(link='probit'), "
        f"found {family!r}{hint}")
