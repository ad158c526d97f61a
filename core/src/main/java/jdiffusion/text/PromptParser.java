package jdiffusion.text;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalDouble;

/**
 * ComfyUI's prompt weight syntax, as its CLIPTextEncode reads it ({@code comfy/sd1_clip.py}: {@code escape_important},
 * {@code token_weights}, {@code parse_parentheses}, {@code unescape_important}):
 * <ul>
 * <li>{@code (text)} multiplies the weight of text by 1.1; nesting multiplies again: {@code ((text))} = 1.1 x 1.1.</li>
 * <li>{@code (text:1.3)} sets the weight to 1.3, replacing (not multiplying) the weight of the enclosing groups.
 * The number is whatever Python's {@code float()} accepts after the LAST colon ({@code inf}, {@code -2}, {@code 1_0},
 * surrounding blanks); anything else leaves the colon and the text as prompt text, weighted 1.1.</li>
 * <li>{@code \(} and {@code \)} are literal parentheses, taken out before parsing.</li>
 * <li>Unbalanced parentheses are not errors: an unclosed {@code (} and everything after it is plain text at the
 * current weight; a stray {@code )} leaves the rest of the prompt without any weighting (ComfyUI's nesting counter
 * goes negative there), and both stay in the text the tokenizer sees.</li>
 * </ul>
 * A1111's {@code [text]} (divide by 1.1), {@code BREAK}, {@code AND} and scheduling syntax are NOT ComfyUI syntax: they
 * are ordinary text here, as in ComfyUI. {@code embedding:name} (textual inversion) is not supported either; it is
 * tokenized as text.
 */
public final class PromptParser {
    /** The factor of one pair of parentheses. */
    public static final double PAREN_FACTOR = 1.1;
    /** Python's recursion limit stops ComfyUI near 1000 nested groups; deeper input here is rejected up front. */
    static final int MAX_NESTING = 900;

    /** ComfyUI's placeholders for escaped parentheses: NUL then 1 or 2, characters a prompt never really holds. */
    private static final String ESCAPED_CLOSE = "\0\1";
    private static final String ESCAPED_OPEN = "\0\2";

    /** A run of prompt text and the weight every token of it gets. */
    public record Segment(String text, double weight) {
    }

    private PromptParser() {
    }

    /**
     * The weighted runs of a prompt in order, escapes resolved ({@code \(} becomes {@code (}). Text outside any
     * parentheses has weight 1. Runs are never empty strings.
     *
     * @throws IllegalArgumentException when parentheses nest deeper than ComfyUI can parse, or a weight is not a
     *                                  finite number (NaN, inf, or past the float range)
     */
    public static List<Segment> parse(String prompt) {
        String text = escape(prompt);
        checkNesting(text);
        List<Segment> raw = new ArrayList<>();
        weigh(text, 1.0, raw);
        List<Segment> out = new ArrayList<>(raw.size());
        for (Segment s : raw) {
            out.add(new Segment(unescape(s.text()), s.weight()));
        }
        return out;
    }

    static String escape(String text) {
        return text.replace("\\)", ESCAPED_CLOSE).replace("\\(", ESCAPED_OPEN);
    }

    static String unescape(String text) {
        return text.replace(ESCAPED_CLOSE, ")").replace(ESCAPED_OPEN, "(");
    }

    /** token_weights: a group wrapped in parentheses is re-parsed at its own weight, anything else is text. */
    private static void weigh(String text, double weight, List<Segment> out) {
        for (String part : topLevelParts(text)) {
            if (part.length() < 2 || part.charAt(0) != '(' || part.charAt(part.length() - 1) != ')') {
                out.add(new Segment(part, weight));
                continue;
            }
            String inner = part.substring(1, part.length() - 1);
            double innerWeight = weight * PAREN_FACTOR;
            int colon = inner.lastIndexOf(':');
            // a colon at index 0 is text, as ComfyUI only looks at colons after the first character
            if (colon > 0) {
                OptionalDouble explicit = pythonFloat(inner.substring(colon + 1));
                if (explicit.isPresent()) {
                    innerWeight = explicit.getAsDouble();
                    inner = inner.substring(0, colon);
                }
            }
            if (!Float.isFinite((float) innerWeight)) {
                // NaN, inf or a float overflow would turn the whole conditioning into NaN: a black image
                throw new IllegalArgumentException("prompt weight in '" + unescape(part) + "' is not a finite number"
                        + " (" + innerWeight + ")");
            }
            weigh(inner, innerWeight, out);
        }
    }

    /**
     * parse_parentheses: splits text into plain runs and top-level parenthesised groups. The depth counter is
     * allowed to go negative on a stray ')', after which no group ever closes at depth 0 again: that is what makes
     * the rest of such a prompt plain text.
     */
    static List<String> topLevelParts(String text) {
        List<String> parts = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int depth = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '(') {
                if (depth == 0 && !current.isEmpty()) {
                    parts.add(current.toString());
                    current.setLength(0);
                }
                current.append(c);
                depth++;
            } else if (c == ')') {
                depth--;
                current.append(c);
                if (depth == 0) {
                    parts.add(current.toString());
                    current.setLength(0);
                }
            } else {
                current.append(c);
            }
        }
        if (!current.isEmpty()) {
            parts.add(current.toString());
        }
        return parts;
    }

    private static void checkNesting(String text) {
        int depth = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
            if (depth > MAX_NESTING) {
                throw new IllegalArgumentException("prompt nests parentheses more than " + MAX_NESTING + " deep (at character " + i + ")");
            }
        }
    }

    /**
     * Python's {@code float(s)} for a str: blanks around, optional sign, {@code inf}/{@code infinity}/{@code nan} in
     * any case, or a decimal with optional fraction and exponent where single underscores may sit between digits.
     * Unicode decimal digits count as digits. Empty when Python would raise ValueError. Java's own parser is not
     * used on raw input because it also takes hex, {@code 1.5f} and {@code 1.5d}, which Python rejects.
     */
    static OptionalDouble pythonFloat(String s) {
        String t = stripPythonSpace(s);
        int i = 0;
        boolean negative = false;
        if (!t.isEmpty() && (t.charAt(0) == '+' || t.charAt(0) == '-')) {
            negative = t.charAt(0) == '-';
            i = 1;
        }
        String body = t.substring(i);
        String lower = body.toLowerCase(Locale.ROOT);
        if (lower.equals("inf") || lower.equals("infinity")) {
            return OptionalDouble.of(negative ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY);
        }
        if (lower.equals("nan")) {
            return OptionalDouble.of(Double.NaN);
        }
        String decimal = asciiDecimal(body);
        if (decimal == null) {
            return OptionalDouble.empty();
        }
        double v = Double.parseDouble(decimal);
        return OptionalDouble.of(negative ? -v : v);
    }

    /**
     * The body of a decimal literal with underscores removed and digits made ASCII, or null when it is not
     * {@code digits? ('.' digits?)? ([eE] [+-]? digits)?} with at least one mantissa digit.
     */
    private static String asciiDecimal(String body) {
        StringBuilder out = new StringBuilder(body.length());
        int[] at = {0};
        int intDigits = digits(body, at, out);
        if (intDigits < 0) {
            return null;
        }
        int fracDigits = 0;
        if (at[0] < body.length() && body.charAt(at[0]) == '.') {
            out.append('.');
            at[0]++;
            fracDigits = digits(body, at, out);
            if (fracDigits < 0) {
                return null;
            }
        }
        if (intDigits + fracDigits == 0) {
            return null;
        }
        if (at[0] < body.length() && (body.charAt(at[0]) == 'e' || body.charAt(at[0]) == 'E')) {
            out.append('e');
            at[0]++;
            if (at[0] < body.length() && (body.charAt(at[0]) == '+' || body.charAt(at[0]) == '-')) {
                out.append(body.charAt(at[0]++));
            }
            if (digits(body, at, out) <= 0) {
                return null;
            }
        }
        return at[0] == body.length() ? out.toString() : null;
    }

    /** Reads digit (_? digit)* from at[0]; returns how many digits, or -1 for a misplaced underscore. */
    private static int digits(String s, int[] at, StringBuilder out) {
        int count = 0;
        while (at[0] < s.length()) {
            int cp = s.codePointAt(at[0]);
            if (cp == '_') {
                int next = at[0] + 1;
                if (count == 0 || next >= s.length() || decimalValue(s.codePointAt(next)) < 0) {
                    return -1;
                }
                at[0] = next;
                continue;
            }
            int d = decimalValue(cp);
            if (d < 0) {
                break;
            }
            out.append((char) ('0' + d));
            count++;
            at[0] += Character.charCount(cp);
        }
        return count;
    }

    private static int decimalValue(int cp) {
        return Character.getType(cp) == Character.DECIMAL_DIGIT_NUMBER ? Character.digit(cp, 10) : -1;
    }

    private static String stripPythonSpace(String s) {
        int from = 0;
        int to = s.length();
        while (from < to && isPythonSpace(s.charAt(from))) {
            from++;
        }
        while (to > from && isPythonSpace(s.charAt(to - 1))) {
            to--;
        }
        return s.substring(from, to);
    }

    /** Python's str.isspace for one BMP character (every Unicode whitespace character is in the BMP). */
    static boolean isPythonSpace(char c) {
        if (c >= 0x09 && c <= 0x0D || c >= 0x1C && c <= 0x20 || c == 0x85) {
            return true;
        }
        int t = Character.getType(c);
        return t == Character.SPACE_SEPARATOR || t == Character.LINE_SEPARATOR || t == Character.PARAGRAPH_SEPARATOR;
    }
}
