/* One linear layer's LoRA for the tokens of several adapters, in one pass over each adapter's weights.
 *
 * For every group (one adapter and its token rows):
 *   h = x[row] @ A[adapter]^T                  A[adapter]: [slices * rank, in], slice s's rows s*rank .. s*rank+rank-1
 *   y[row, offset_s : offset_s + size_s] += scale * h[s*rank : s*rank+rank] @ B_s[adapter]
 *                                              B_s[adapter]: [rank, size_s]
 * Each weight row is read once per group and reused from cache for the group's other tokens: no token is copied,
 * padded or scattered. Single-threaded: an engine replica on a CPU-only host computes on one core.
 */
#include <stdint.h>

#define MAX_SLICES 4

typedef struct {
    int64_t groups;
    const int64_t *adapters; /* [groups]: the adapter's index in the stacked weights */
    const int64_t *offsets;  /* [groups + 1]: each group's token rows in `rows` */
    const int64_t *rows;
} lora_plan;

typedef struct {
    const float *a; /* [adapters, slices * rank, in] */
    const float *b[MAX_SLICES]; /* per slice, [adapters, rank, size] */
    int64_t sizes[MAX_SLICES];
    int64_t in, slices, rank;
} lora_layer;

static float dot(const float *restrict u, const float *restrict v, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += u[i] * v[i];
    return sum;
}

static void axpy(float *restrict y, const float *restrict v, float c, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += c * v[i];
}

void lora_shrink_expand(const lora_plan *plan, const lora_layer *layer, const float *x, int64_t x_stride, float *y,
                        int64_t y_stride, float scale) {
    const int64_t width = layer->slices * layer->rank, in = layer->in, rank = layer->rank;
    int64_t max_tokens = 1;
    for (int64_t g = 0; g < plan->groups; g++)
        if (plan->offsets[g + 1] - plan->offsets[g] > max_tokens) max_tokens = plan->offsets[g + 1] - plan->offsets[g];
    float h[max_tokens * width]; /* the group's x @ A^T, scaled; a few KB for decode groups */
    for (int64_t g = 0; g < plan->groups; g++) {
        const int64_t *rows = plan->rows + plan->offsets[g];
        const int64_t tokens = plan->offsets[g + 1] - plan->offsets[g];
        const float *a = layer->a + plan->adapters[g] * width * in;
        for (int64_t r = 0; r < width; r++)
            for (int64_t t = 0; t < tokens; t++) h[t * width + r] = scale * dot(x + rows[t] * x_stride, a + r * in, in);
        int64_t offset = 0;
        for (int64_t s = 0; s < layer->slices; s++) {
            const int64_t size = layer->sizes[s];
            const float *b = layer->b[s] + plan->adapters[g] * rank * size;
            for (int64_t r = 0; r < rank; r++)
                for (int64_t t = 0; t < tokens; t++)
                    axpy(y + rows[t] * y_stride + offset, b + r * size, h[t * width + s * rank + r], size);
            offset += size;
        }
    }
}
