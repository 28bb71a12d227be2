/*
 * A PKCS#11 module for the tests that plays a module answering with garbage: it forwards every call to the module
 * named by DEVRIFT_GARBAGE_TARGET and, while the file named by DEVRIFT_GARBAGE_SWITCH holds "on", answers the length
 * query of C_Encrypt, C_Decrypt and C_Sign with (CK_ULONG)-1, and reports (CK_ULONG)-1 bytes written by C_Encrypt and
 * C_Decrypt and one byte too few by C_Sign — what a broken proxy does (Caml Crush's GCM answers). While it holds
 * "refuse", every C_UnwrapKey and C_WrapKey that writes a key (a C_WrapKey length query is forwarded) answers
 * CKR_ATTRIBUTE_VALUE_INVALID, and every C_CreateObject CKR_TEMPLATE_INCONSISTENT, without calling the module. While
 * it holds "hold", C_CreateObject, C_UnwrapKey and C_FindObjectsInit copy the template's values, wait 10 ms, and
 * answer the same way without calling the module when any value changed in the meantime: the caller must keep the
 * template's memory valid for the whole call (memory freed meanwhile is overwritten by malloc's free lists, which is
 * how SoftHSM2 came to see garbage). While it holds "nocopy", C_CopyObject answers CKR_ACTION_PROHIBITED (what a module
 * says of a key with CKA_COPYABLE false) without calling the module. Built by test.sh with cc against p11-kit's pkcs11.h.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "p11-kit/pkcs11.h"

static CK_FUNCTION_LIST list;
static CK_FUNCTION_LIST_PTR target;

/* The switch file's first line, at most 15 characters; "" when there is none. */
static void mode(char buffer[16])
{
  const char *path = getenv("DEVRIFT_GARBAGE_SWITCH");
  memset(buffer, 0, 16);
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return;
  size_t n = fread(buffer, 1, 15, f);
  fclose(f);
  buffer[n] = 0;
  buffer[strcspn(buffer, "\r\n")] = 0;
}

static int garbage(void)
{
  char buffer[16];
  mode(buffer);
  return strcmp(buffer, "on") == 0;
}

/* True while "refuse". */
static int refuse_call(void)
{
  char buffer[16];
  mode(buffer);
  return strcmp(buffer, "refuse") == 0;
}

#define HOLD_MAX 32
#define HOLD_BYTES 64

/* While "hold": whether the template's values changed during a 10 ms wait (the first HOLD_BYTES of each). */
static int changed_while_held(CK_ATTRIBUTE_PTR template, CK_ULONG count)
{
  char buffer[16];
  mode(buffer);
  if (strcmp(buffer, "hold") != 0 || template == NULL || count == 0 || count > HOLD_MAX) return 0;
  unsigned char copy[HOLD_MAX][HOLD_BYTES];
  CK_ULONG length[HOLD_MAX];
  for (CK_ULONG i = 0; i < count; i++) {
    length[i] = template[i].pValue == NULL ? 0 : (template[i].ulValueLen < HOLD_BYTES ? template[i].ulValueLen : HOLD_BYTES);
    if (length[i] > 0) memcpy(copy[i], template[i].pValue, length[i]);
  }
  usleep(10000);
  for (CK_ULONG i = 0; i < count; i++)
    if (length[i] > 0 && memcmp(copy[i], template[i].pValue, length[i]) != 0) return 1;
  return 0;
}

static CK_RV create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR template, CK_ULONG count, CK_OBJECT_HANDLE_PTR object)
{
  if (refuse_call() || changed_while_held(template, count)) return CKR_TEMPLATE_INCONSISTENT;
  return target->C_CreateObject(s, template, count, object);
}

static CK_RV copy_object(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR template, CK_ULONG count,
                         CK_OBJECT_HANDLE_PTR copy)
{
  char buffer[16];
  mode(buffer);
  if (strcmp(buffer, "nocopy") == 0) return CKR_ACTION_PROHIBITED;
  return target->C_CopyObject(s, object, template, count, copy);
}

static CK_RV find_objects_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR template, CK_ULONG count)
{
  if (changed_while_held(template, count)) return CKR_ATTRIBUTE_VALUE_INVALID;
  return target->C_FindObjectsInit(s, template, count);
}

static CK_RV wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                      CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (out != NULL && refuse_call()) return CKR_ATTRIBUTE_VALUE_INVALID;
  return target->C_WrapKey(s, m, wrapping, key, out, outLen);
}

static CK_RV unwrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
                        CK_ULONG inLen, CK_ATTRIBUTE_PTR template, CK_ULONG count, CK_OBJECT_HANDLE_PTR key)
{
  if (refuse_call() || changed_while_held(template, count)) return CKR_ATTRIBUTE_VALUE_INVALID;
  return target->C_UnwrapKey(s, m, unwrapping, in, inLen, template, count, key);
}

static CK_RV encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage() && out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
  CK_RV rv = target->C_Encrypt(s, in, inLen, out, outLen);
  if (rv == CKR_OK && garbage()) *outLen = (CK_ULONG)-1;
  return rv;
}

static CK_RV decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage() && out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
  CK_RV rv = target->C_Decrypt(s, in, inLen, out, outLen);
  if (rv == CKR_OK && garbage()) *outLen = (CK_ULONG)-1;
  return rv;
}

static CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage()) {
    if (out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
    CK_RV rv = target->C_Sign(s, in, inLen, out, outLen);
    if (rv == CKR_OK) *outLen = *outLen - 1;
    return rv;
  }
  return target->C_Sign(s, in, inLen, out, outLen);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
  if (!target) {
    const char *path = getenv("DEVRIFT_GARBAGE_TARGET");
    void *module = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CK_C_GetFunctionList get = module ? (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList") : NULL;
    if (!get || get(&target) != CKR_OK) return CKR_GENERAL_ERROR;
    memcpy(&list, target, sizeof list);
    list.C_GetFunctionList = C_GetFunctionList;
    list.C_Encrypt = encrypt;
    list.C_Decrypt = decrypt;
    list.C_Sign = sign;
    list.C_WrapKey = wrap_key;
    list.C_UnwrapKey = unwrap_key;
    list.C_CreateObject = create_object;
    list.C_CopyObject = copy_object;
    list.C_FindObjectsInit = find_objects_init;
  }
  *out = &list;
  return CKR_OK;
}
