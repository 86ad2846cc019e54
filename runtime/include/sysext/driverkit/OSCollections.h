/* Minimal property containers: OSString, OSNumber, OSData, OSBoolean, OSArray, OSDictionary.
 *
 * They are OSObjects (retain/release, OSDynamicCast). Strings, numbers, data and booleans are
 * immutable. Arrays and dictionaries retain what they hold and are not thread-safe: mutate one
 * from a single queue, or hand out copies (OSDictionary_Copy). Constructors return +1 or NULL
 * when memory runs out; Get* return +0 values that live as long as their container holds them. */
#ifndef SYSEXT_DRIVERKIT_OSCOLLECTIONS_H
#define SYSEXT_DRIVERKIT_OSCOLLECTIONS_H

#include <sysext/driverkit/OSObject.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OSString OSString;
typedef struct OSNumber OSNumber;
typedef struct OSData OSData;
typedef struct OSBoolean OSBoolean;
typedef struct OSArray OSArray;
typedef struct OSDictionary OSDictionary;

DK_API extern const OSClass OSString_Class, OSNumber_Class, OSData_Class, OSBoolean_Class,
    OSArray_Class, OSDictionary_Class;

/** A copy of the NUL-terminated `cstr`. */
DK_API OSString *OSString_WithCString(const char *cstr);
/** The bytes (NUL-terminated), borrowed. */
DK_API const char *OSString_GetCStringNoCopy(const OSString *s);
DK_API size_t OSString_GetLength(const OSString *s);
DK_API bool OSString_IsEqualToCString(const OSString *s, const char *cstr);

/** An unsigned number of `numberOfBits` (8, 16, 32 or 64; the value is truncated to it). */
DK_API OSNumber *OSNumber_WithNumber(uint64_t value, size_t numberOfBits);
DK_API uint64_t OSNumber_UnsignedValue(const OSNumber *n);
DK_API size_t OSNumber_NumberOfBits(const OSNumber *n);

/** A copy of `length` bytes (bytes may be NULL when length is 0). */
DK_API OSData *OSData_WithBytes(const void *bytes, size_t length);
DK_API const void *OSData_GetBytesNoCopy(const OSData *d);
DK_API size_t OSData_GetLength(const OSData *d);

/** The two shared booleans; retain/release on them do nothing. */
DK_API extern OSBoolean *const kOSBooleanTrue;
DK_API extern OSBoolean *const kOSBooleanFalse;
DK_API bool OSBoolean_GetValue(const OSBoolean *b);

DK_API OSArray *OSArray_WithCapacity(size_t capacity);
/** Append `obj` (retained). false on NULL obj or no memory. */
DK_API bool OSArray_SetObject(OSArray *a, OSObject *obj);
/** The object at `index`, +0; NULL past the end. */
DK_API OSObject *OSArray_GetObject(const OSArray *a, size_t index);
DK_API size_t OSArray_GetCount(const OSArray *a);

DK_API OSDictionary *OSDictionary_WithCapacity(size_t capacity);
/** Set `key` to `obj` (retained; a previous value is released). false on NULL args or no memory. */
DK_API bool OSDictionary_SetObject(OSDictionary *d, const char *key, OSObject *obj);
/** The value of `key`, +0, or NULL. */
DK_API OSObject *OSDictionary_GetObject(const OSDictionary *d, const char *key);
/** Remove `key`; true if it was there. */
DK_API bool OSDictionary_RemoveObject(OSDictionary *d, const char *key);
DK_API size_t OSDictionary_GetCount(const OSDictionary *d);
/** Iteration in insertion order: the key / value at `index`, NULL past the end. Borrowed. */
DK_API const char *OSDictionary_GetKeyAtIndex(const OSDictionary *d, size_t index);
DK_API OSObject *OSDictionary_GetObjectAtIndex(const OSDictionary *d, size_t index);
/** Set every entry of `from` into `d` (values retained, shared). */
DK_API bool OSDictionary_Merge(OSDictionary *d, const OSDictionary *from);
/** A new dictionary with the same entries (a shallow copy: values are shared, retained). */
DK_API OSDictionary *OSDictionary_Copy(const OSDictionary *d);

/* Typed getters: NULL / false when the key is absent or holds another type. */
DK_API OSString *OSDictionary_GetString(const OSDictionary *d, const char *key);
DK_API OSDictionary *OSDictionary_GetDictionary(const OSDictionary *d, const char *key);
DK_API bool OSDictionary_GetNumberValue(const OSDictionary *d, const char *key, uint64_t *value);
/* Setters of a new value: false on no memory. */
DK_API bool OSDictionary_SetStringValue(OSDictionary *d, const char *key, const char *value);
DK_API bool OSDictionary_SetNumberValue(OSDictionary *d, const char *key, uint64_t value);

#ifdef __cplusplus
}
#endif

#endif
