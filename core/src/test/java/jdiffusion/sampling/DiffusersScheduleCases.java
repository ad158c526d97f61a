package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import jdiffusion.sampling.DiffusersSchedule.Schedule;
import jdiffusion.sampling.DiffusersSchedule.Spacing;

/** What the diffusers schedule golden tests share: the schedule a recorded scheduler class gives, and its check. */
final class DiffusersScheduleCases {
    private DiffusersScheduleCases() {
    }

    /** The schedule of the diffusers scheduler class a golden case records (where: the case, for the error). */
    static Schedule schedule(String schedulerClass, int steps, Spacing spacing, boolean karras, String where) {
        return switch (schedulerClass) {
            case "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler" ->
                    DiffusersSchedule.euler(steps, spacing, karras);
            case "HeunDiscreteScheduler" -> DiffusersSchedule.heun(steps, spacing, karras);
            case "DPMSolverMultistepScheduler" -> DiffusersSchedule.dpmSolverMultistep(steps, spacing, karras);
            case "DDIMScheduler" -> DiffusersSchedule.ddim(steps, spacing);
            default -> throw new AssertionError("unknown scheduler " + schedulerClass + " in " + where);
        };
    }

    /** Fails at the first element with |expected - actual| > atol + rtol |expected|, or on a length mismatch. */
    static void assertVector(String what, JsonNode expected, double[] actual, double atol, double rtol) {
        assertEquals(expected.size(), actual.length, what + " length");
        for (int i = 0; i < actual.length; i++) {
            double e = expected.get(i).asDouble();
            if (!(Math.abs(e - actual[i]) <= atol + rtol * Math.abs(e))) {
                fail(what + "[" + i + "]: expected " + e + ", got " + actual[i]);
            }
        }
    }
}
