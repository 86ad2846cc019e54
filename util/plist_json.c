#include "util/common.h"
#include "util/plist_json.h"

#include <openssl/evp.h>
#include <time.h>

#define SX_PLIST_JSON_DEPTH 64

static json_object *conv(plist_t n, int depth)
{
    if (!n || depth > SX_PLIST_JSON_DEPTH)
        return NULL;
    switch (plist_get_node_type(n)) {
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(n, &b);
        return json_object_new_boolean(b);
    }
    case PLIST_UINT: {
        uint64_t v = 0;
        plist_get_uint_val(n, &v);
        return v > INT64_MAX ? json_object_new_double((double)v) : json_object_new_int64((int64_t)v);
    }
    case PLIST_REAL: {
        double v = 0;
        plist_get_real_val(n, &v);
        return json_object_new_double(v);
    }
    case PLIST_STRING: {
        char *s = NULL;
        plist_get_string_val(n, &s);
        json_object *o = json_object_new_string(s ? s : "");
        free(s);
        return o;
    }
    case PLIST_DATA: {
        char *d = NULL;
        uint64_t len = 0;
        plist_get_data_val(n, &d, &len);
        size_t cap = 4 * ((size_t)len / 3 + 1) + 1;
        char *b64 = malloc(cap);
        json_object *o = NULL;
        if (b64) {
            EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)d, (int)len);
            o = json_object_new_string(b64);
        }
        free(b64);
        free(d);
        return o;
    }
    case PLIST_DATE: {
        int32_t sec = 0, usec = 0;
        plist_get_date_val(n, &sec, &usec);
        /* plist dates count from 2001-01-01. */
        time_t t = (time_t)sec + 978307200;
        struct tm tm;
        char buf[32];
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_object_new_string(buf);
    }
    case PLIST_ARRAY: {
        json_object *a = json_object_new_array();
        uint32_t cnt = plist_array_get_size(n);
        for (uint32_t i = 0; i < cnt; i++)
            json_object_array_add(a, conv(plist_array_get_item(n, i), depth + 1));
        return a;
    }
    case PLIST_DICT: {
        json_object *o = json_object_new_object();
        plist_dict_iter it = NULL;
        plist_dict_new_iter(n, &it);
        for (;;) {
            char *key = NULL;
            plist_t val = NULL;
            plist_dict_next_item(n, it, &key, &val);
            if (!key)
                break;
            json_object_object_add(o, key, conv(val, depth + 1));
            free(key);
        }
        free(it);
        return o;
    }
    default:
        return NULL;
    }
}

json_object *sx_plist_to_json(plist_t node)
{
    return conv(node, 0);
}
