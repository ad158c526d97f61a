package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/**
 * The fields of an AUTOMATIC1111 {@code /sdapi/v1/txt2img} or {@code img2img} body, checked strictly for type and
 * range before anything runs: a string where a number belongs, an object for the prompt, a number past int range
 * (2^32 + 64 must not become 64) or outside this server's limits is a 422 with A1111's error JSON
 * {@code {error, detail, body, errors}} (detail lists FastAPI's {loc, msg, type} for each field), never a silently
 * "fixed" job. Fields the server does not use are not checked (pydantic ignores unknown fields too).
 */
final class A1111Request {
    static final int MAX_SIZE = 16384;
    static final int MAX_ITERATIONS = 100;
    private static final BigInteger MAX_SEED = BigInteger.TWO.pow(64).subtract(BigInteger.ONE);

    final String prompt;
    final String negative;
    final Integer width;
    final Integer height;
    final int steps;
    final double cfg;
    final long seed; // -1: random
    final int batch;
    final int iterations;
    final double denoise;
    final String sampler;
    final String scheduler;
    final String checkpoint;
    final String initImage;

    private final JsonNode body;
    private final List<ObjectNode> errors = new ArrayList<>();

    private A1111Request(JsonNode body, ServerConfig limits, boolean img2img) {
        this.body = body;
        prompt = string("prompt", "");
        negative = string("negative_prompt", "");
        width = integer("width", null, 16, MAX_SIZE);
        height = integer("height", null, 16, MAX_SIZE);
        Integer st = integer("steps", 20, 1, limits.maxSteps());
        steps = st == null ? 20 : st;
        cfg = number("cfg_scale", 7.0, 0, 100);
        seed = seed();
        Integer b = integer("batch_size", 1, 1, limits.maxBatch());
        batch = b == null ? 1 : b;
        Integer it = integer("n_iter", 1, 1, MAX_ITERATIONS);
        iterations = it == null ? 1 : it;
        denoise = number("denoising_strength", 0.75, 0, 1);
        String s = string("sampler_name", null);
        String si = string("sampler_index", null);
        sampler = s != null ? s : si;
        scheduler = string("scheduler", null);
        JsonNode o = body.get("override_settings");
        String ckpt = null;
        if (o != null && !o.isNull()) {
            if (!o.isObject()) {
                error("override_settings", "value is not a valid dict", "type_error.dict");
            } else if (o.has("sd_model_checkpoint") && !o.get("sd_model_checkpoint").isNull()) {
                if (o.get("sd_model_checkpoint").isTextual()) {
                    ckpt = o.get("sd_model_checkpoint").asText();
                } else {
                    error("override_settings.sd_model_checkpoint", "str type expected", "type_error.str");
                }
            }
        }
        checkpoint = ckpt;
        String init = null;
        if (img2img) {
            JsonNode images = body.get("init_images");
            if (images == null || images.isNull()) {
                error("init_images", "field required", "value_error.missing");
            } else if (!images.isArray() || images.isEmpty()) {
                error("init_images", "a non-empty list of base64 images is required", "type_error.list");
            } else if (!images.get(0).isTextual()) {
                error("init_images.0", "str type expected", "type_error.str");
            } else {
                init = images.get(0).asText();
            }
        }
        initImage = init;
        if (!errors.isEmpty()) {
            throw new ApiError(422, errorBody());
        }
    }

    /** Parses and checks a request body; throws {@link ApiError} 422 listing every bad field. */
    static A1111Request parse(JsonNode body, ServerConfig limits, boolean img2img) {
        return new A1111Request(body, limits, img2img);
    }

    private ObjectNode errorBody() {
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("error", "RequestValidationError");
        ArrayNode detail = out.putArray("detail");
        List<String> lines = new ArrayList<>();
        for (ObjectNode e : errors) {
            detail.add(e);
            lines.add(e.path("loc").get(1).asText() + ": " + e.path("msg").asText());
        }
        out.set("body", body);
        out.put("errors", String.join("; ", lines));
        return out;
    }

    private void error(String field, String msg, String type) {
        ObjectNode e = PromptStore.JSON.createObjectNode();
        e.putArray("loc").add("body").add(field);
        e.put("msg", msg);
        e.put("type", type);
        errors.add(e);
    }

    private String string(String field, String def) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isTextual()) {
            error(field, "str type expected", "type_error.str");
            return def;
        }
        return v.asText();
    }

    /** An integer in [min, max]: a JSON integer, or a number with an integral value (5.0); never a string. */
    private Integer integer(String field, Integer def, long min, long max) {
        BigInteger v = integral(field);
        if (v == null) {
            return def;
        }
        if (v.compareTo(BigInteger.valueOf(min)) < 0 || v.compareTo(BigInteger.valueOf(max)) > 0) {
            error(field, "ensure this value is between " + min + " and " + max + " (got " + v + ")",
                    "value_error.number.not_in_range");
            return def;
        }
        return v.intValueExact();
    }

    private BigInteger integral(String field) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (v.isIntegralNumber()) {
            return v.bigIntegerValue();
        }
        if (v.isNumber()) {
            BigDecimal d = v.decimalValue();
            if (d.stripTrailingZeros().scale() <= 0) {
                return d.toBigIntegerExact();
            }
        }
        error(field, "value is not a valid integer", "type_error.integer");
        return null;
    }

    private double number(String field, double def, double min, double max) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isNumber() || !Double.isFinite(v.asDouble())) {
            error(field, "value is not a valid float", "type_error.float");
            return def;
        }
        double d = v.asDouble();
        if (d < min || d > max) {
            error(field, "ensure this value is between " + min + " and " + max + " (got " + v + ")",
                    "value_error.number.not_in_range");
            return def;
        }
        return d;
    }

    private long seed() {
        BigInteger v = integral("seed");
        if (v == null) {
            return -1;
        }
        if (v.compareTo(BigInteger.ONE.negate()) < 0 || v.compareTo(MAX_SEED) > 0) {
            error("seed", "ensure this value is -1 (random) or between 0 and " + MAX_SEED, 
                    "value_error.number.not_in_range");
            return -1;
        }
        return v.longValue(); // 0 .. 2^64 - 1 kept as its 64 bits; -1 is random
    }
}
