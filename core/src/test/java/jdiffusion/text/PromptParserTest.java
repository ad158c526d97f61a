package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.OptionalDouble;
import jdiffusion.text.PromptParser.Segment;
import org.junit.jupiter.api.Test;

/**
 * ComfyUI's weight syntax. Expected weights are written as the products Python forms ({@code 1.0 * 1.1 * 1.1}), so
 * they match to the last bit, and the cases follow ComfyUI's parse_parentheses/token_weights step by step.
 */
class PromptParserTest {
    private static final double P = PromptParser.PAREN_FACTOR;

    private static Segment seg(String text, double weight) {
        return new Segment(text, weight);
    }

    private static void check(String prompt, Segment... expected) {
        assertEquals(List.of(expected), PromptParser.parse(prompt), prompt);
    }

    @Test
    void plainTextIsOneRunAtWeightOne() {
        check("a photo of a cat", seg("a photo of a cat", 1.0));
        check("");
    }

    @Test
    void parenthesesMultiplyByOnePointOneAndNest() {
        check("a (cat) b", seg("a ", 1.0), seg("cat", 1.0 * P), seg(" b", 1.0));
        check("((cat))", seg("cat", 1.0 * P * P));
        check("(((cat)))", seg("cat", 1.0 * P * P * P));
        check("(a (b (c)) d)", seg("a ", P), seg("b ", P * P), seg("c", P * P * P), seg(" d", P));
        assertEquals(1.2100000000000002, PromptParser.parse("((x))").get(0).weight());
        // an empty group contributes nothing
        check("a () b", seg("a ", 1.0), seg(" b", 1.0));
    }

    @Test
    void explicitWeightReplacesTheEnclosingWeight() {
        check("(cat:1.3)", seg("cat", 1.3));
        check("a (red hat:0.5), b", seg("a ", 1.0), seg("red hat", 0.5), seg(", b", 1.0));
        // inside a group: the inner explicit weight is absolute, the rest of the outer group gets 1.1
        check("((cat:1.5) dog)", seg("cat", 1.5), seg(" dog", P));
        // an explicit weight on the outer group multiplies the inner plain group
        check("((cat) dog:2)", seg("cat", 2.0 * P), seg(" dog", 2.0));
        // the LAST colon holds the number
        check("(a:b:0.7)", seg("a:b", 0.7));
        check("(cat:0)", seg("cat", 0.0));
        check("(cat:-1)", seg("cat", -1.0));
    }

    @Test
    void weightsAsPythonFloatReadsThem() {
        check("(cat: 1.25 )", seg("cat", 1.25));
        check("(cat:1_5)", seg("cat", 15.0));
        check("(cat:.5)", seg("cat", 0.5));
        check("(cat:2.)", seg("cat", 2.0));
        check("(cat:1e-1)", seg("cat", 0.1));
        // Python reads inf and nan too, but such a weight makes the conditioning NaN (a black image): refused
        for (String p : new String[] {"(cat:+inf)", "(cat:-Infinity)", "(cat:nan)"}) {
            org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> PromptParser.parse(p));
        }
        check("(cat:\u0661.\u0665)", seg("cat", 1.5)); // Arabic-Indic digits are decimal digits to Python
    }

    @Test
    void numbersPythonRejectsStayText() {
        // the text keeps the colon and gets the plain 1.1
        check("(cat:abc)", seg("cat:abc", P));
        check("(cat:)", seg("cat:", P));
        check("(cat:1.5f)", seg("cat:1.5f", P));
        check("(cat:0x10)", seg("cat:0x10", P));
        check("(cat:1__5)", seg("cat:1__5", P));
        check("(cat:_1)", seg("cat:_1", P));
        check("(cat:1_)", seg("cat:1_", P));
        check("(cat:1_.5)", seg("cat:1_.5", P));
        check("(cat:.)", seg("cat:.", P));
        check("(cat:1e)", seg("cat:1e", P));
        check("(cat:1 2)", seg("cat:1 2", P));
        // a colon as the first character is never a weight separator
        check("(:1.5)", seg(":1.5", P));
    }

    @Test
    void pythonFloatDirectly() {
        assertEquals(OptionalDouble.of(1.5), PromptParser.pythonFloat("\t1.5\n"));
        assertEquals(OptionalDouble.of(-0.0), PromptParser.pythonFloat("-0"));
        assertEquals(OptionalDouble.of(1e10), PromptParser.pythonFloat("1_0e9"));
        assertEquals(OptionalDouble.of(2.0), PromptParser.pythonFloat("\u00a02\u3000"));
        assertFalse(PromptParser.pythonFloat("").isPresent());
        assertFalse(PromptParser.pythonFloat("1.5d").isPresent());
        assertFalse(PromptParser.pythonFloat("--1").isPresent());
        assertFalse(PromptParser.pythonFloat("infinit").isPresent());
    }

    @Test
    void escapedParenthesesAreLiteralText() {
        check("\\(cat\\)", seg("(cat)", 1.0));
        check("a \\(b\\) (c:1.2)", seg("a (b) ", 1.0), seg("c", 1.2));
        // an escaped parenthesis inside a weighted group
        check("(smiley \\(face\\):1.4)", seg("smiley (face)", 1.4));
        // only the parenthesis is escaped: a lone backslash stays
        check("a\\b", seg("a\\b", 1.0));
    }

    @Test
    void unbalancedParenthesesFollowComfyUi() {
        // unclosed: the rest is text at the current weight, '(' included
        check("a (b c", seg("a ", 1.0), seg("(b c", 1.0));
        check("((a)", seg("(a", P));
        // a stray ')' makes the depth negative: later groups never close at depth 0, so all of it is one plain run
        check("a) (b)", seg("a) (b)", 1.0));
        check("(a)) (b)", seg("a", P), seg(") (b)", 1.0));
        check(")", seg(")", 1.0));
    }

    @Test
    void a1111SyntaxIsPlainText() {
        check("[cat]", seg("[cat]", 1.0));
        check("a BREAK b AND c", seg("a BREAK b AND c", 1.0));
        check("([cat])", seg("[cat]", P));
    }

    @Test
    void absurdNestingIsAClearError() {
        String deep = "(".repeat(PromptParser.MAX_NESTING + 1) + "x" + ")".repeat(PromptParser.MAX_NESTING + 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PromptParser.parse(deep));
        assertTrue(e.getMessage().contains("nests parentheses"), e.getMessage());
        String ok = "(".repeat(PromptParser.MAX_NESTING) + "x" + ")".repeat(PromptParser.MAX_NESTING);
        assertEquals("x", PromptParser.parse(ok).get(0).text());
    }
}
