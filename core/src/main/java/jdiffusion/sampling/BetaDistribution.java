package jdiffusion.sampling;

/**
 * The Beta(a, b) distribution function and its inverse (scipy's beta.cdf / beta.ppf), for the beta scheduler. The
 * CDF is the regularised incomplete beta function, evaluated by its continued fraction; the quantile inverts it by
 * bisection down to adjacent doubles, so it is as accurate as the CDF.
 */
final class BetaDistribution {
    private static final int MAX_TERMS = 10_000;
    private static final double EPS = 1e-16;
    private static final double TINY = 1e-300;

    private BetaDistribution() {
    }

    /** I_x(a, b). */
    static double cdf(double x, double a, double b) {
        if (x <= 0) {
            return 0;
        }
        if (x >= 1) {
            return 1;
        }
        double logFront = a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b);
        // The continued fraction converges fast for x below the mean; use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
        // above it.
        if (x < (a + 1) / (a + b + 2)) {
            return Math.exp(logFront) * continuedFraction(x, a, b) / a;
        }
        return 1 - Math.exp(logFront) * continuedFraction(1 - x, b, a) / b;
    }

    /** The x with I_x(a, b) = q, for q in [0, 1]. */
    static double quantile(double q, double a, double b) {
        if (!(q >= 0 && q <= 1)) {
            throw new IllegalArgumentException("beta quantile of " + q + " (must be in [0, 1])");
        }
        if (q == 0) {
            return 0;
        }
        if (q == 1) {
            return 1;
        }
        if (a == b && q > 0.5) {
            // A symmetric distribution: solve the lower half and mirror, so quantile(0.5) is exactly 0.5 as scipy's.
            return 1 - quantile(1 - q, a, b);
        }
        if (a == b && q == 0.5) {
            return 0.5;
        }
        double lo = 0;
        double hi = 1;
        while (true) {
            double mid = 0.5 * (lo + hi);
            if (mid <= lo || mid >= hi) {
                return Math.abs(cdf(lo, a, b) - q) <= Math.abs(cdf(hi, a, b) - q) ? lo : hi;
            }
            if (cdf(mid, a, b) < q) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }

    /** Modified Lentz evaluation of the incomplete beta continued fraction. */
    private static double continuedFraction(double x, double a, double b) {
        double c = 1;
        double d = 1 - (a + b) * x / (a + 1);
        d = 1 / nonZero(d);
        double h = d;
        for (int m = 1; m <= MAX_TERMS; m++) {
            int m2 = 2 * m;
            double even = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
            d = 1 / nonZero(1 + even * d);
            c = nonZero(1 + even / c);
            h *= d * c;
            double odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
            d = 1 / nonZero(1 + odd * d);
            c = nonZero(1 + odd / c);
            double delta = d * c;
            h *= delta;
            if (Math.abs(delta - 1) < EPS) {
                return h;
            }
        }
        return h;
    }

    private static double nonZero(double v) {
        return Math.abs(v) < TINY ? TINY : v;
    }

    private static double logBeta(double a, double b) {
        return logGamma(a) + logGamma(b) - logGamma(a + b);
    }

    /** log Gamma(x) for x > 0 by the Lanczos approximation (g = 7, 9 terms; ~1e-15 relative). */
    static double logGamma(double x) {
        if (x < 0.5) {
            // Reflection keeps the series in its accurate range.
            return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
        }
        double[] coef = {0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7};
        double z = x - 1;
        double sum = coef[0];
        for (int i = 1; i < coef.length; i++) {
            sum += coef[i] / (z + i);
        }
        double t = z + 7.5;
        return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
    }
}
